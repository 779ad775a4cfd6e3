"""How a mint job cuts its units into COPY chunks: BATCHD_MINT_CHUNK_UNITS
at most, but never fewer chunks than writers while a chunk would keep at
least 5000 units, so a job smaller than writers x chunk still writes on
every writer. The chunk size is fixed in the job row at its first start;
every unit is written once whatever the split."""
import pytest

from conftest import seed_demo
from mintlib import all_units, new_batch, ok, submit, wait_job


@pytest.fixture(scope="module")
def srv(server_factory):
    # the only server on this module's database: it alone decides the chunks
    return server_factory(env={"BATCHD_RATE_LIMIT": "0", "BATCHD_MINT_CHUNK_UNITS": "20000",
                               "BATCHD_MINT_WRITERS": "2"})


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    return seed_demo(run_batchd, srv, "products")


@pytest.mark.parametrize("n, chunk", [
    (30000, 15000),   # under writers x 20000: split in two, one chunk per writer
    (6000, 5000),     # a split would leave 3000 a chunk: 5000 is the floor
    (3000, 5000),     # smaller than the floor: one chunk
    (50000, 20000),   # over writers x 20000: the configured size (3 chunks)
])
def test_chunk_size(srv, demo, psql, n, chunk):
    batch = new_batch(srv, demo, "LOT-C%d" % n)
    job = ok(submit(srv, demo, batch, n, identity_mode="serial"))["mint_job_id"]
    j = wait_job(srv, demo, job, timeout=120)
    assert j["status"] == "COMPLETED" and j["minted_count"] == n, j
    got = psql("SELECT chunk_units, requested_quantity FROM pp_mint_jobs WHERE id = '%s'" % job).strip()
    assert got == "%d|%d" % (chunk, n), got
    # every unit once, ids contiguous from the job's first id, serials unique
    row = psql("SELECT count(*), count(DISTINCT serial), max(u.id) - min(u.id) + 1, min(u.id) = j.first_unit_id"
               " FROM pp_units u, pp_mint_jobs j WHERE j.id = '%s'"
               " AND u.id >= j.first_unit_id AND u.id < j.first_unit_id + j.requested_quantity"
               " GROUP BY j.first_unit_id" % job).strip()
    assert row == "%d|%d|%d|t" % (n, n, n), row


def test_split_job_lists_in_sequence(srv, demo):
    """The two writers commit their chunks in either order; the job's units
    still list in sequence, 1 to n, across the chunk boundary."""
    batch = new_batch(srv, demo, "LOT-ORDER")
    job = ok(submit(srv, demo, batch, 12000, identity_mode="serial"))["mint_job_id"]
    assert wait_job(srv, demo, job, timeout=120)["status"] == "COMPLETED"
    units = all_units(srv, demo, job, limit=1000)
    assert [u["seq"] for u in units] == list(range(1, 12001))
    assert len({u["serial"] for u in units}) == 12000
