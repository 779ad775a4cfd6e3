"""Roster values are what Python's csv module (and so csvkit) reads (issue
20): RFC 4180 with spaces as data, a quote inside an unquoted field as data,
text after a closing quote as more of the field. Generated rosters and
csv-spectrum-style cases go through the real server; every stored row is
compared with csv.DictReader's reading of the same bytes."""
import csv
import io
import json
import random

import pytest
import requests

RESERVED = ("RecipientsEmail", "RecipientsName", "IssueDate")


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(env={"BATCHD_RATE_LIMIT": "0"})


@pytest.fixture(scope="module")
def demo(run_batchd, srv):
    out = run_batchd("seed-demo", "--tenant", "rostervalues", "--json", env={"BATCHD_PUBLIC_URL": srv.url})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["business"]


def upload(srv, demo, data, name="values"):
    files = [("name", (None, name)), ("template_id", (None, demo["template_ids"]["plain"])),
             ("csv_file", ("roster.csv", data, "text/csv"))]
    return requests.post(srv.url + "/business/batches", headers={"Authorization": "Bearer " + demo["token"]},
                         files=files, timeout=60)


def stored(psql, batch_id):
    out = psql("SELECT coalesce(json_agg(json_build_object('email', email, 'name', name, 'custom', custom_data,"
               " 'status', status, 'error', error) ORDER BY row_no), '[]') FROM biz_certificates"
               " WHERE batch_id = '%s'" % batch_id)
    return json.loads(out)


def python_reading(data):
    """What csv.DictReader gives, in the roster's terms: blank rows (every
    cell white space) name nobody and are skipped; header names are matched
    trimmed; only the e-mail is trimmed."""
    text = data.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = [h.strip() for h in rows[0]]
    out = []
    for cells in rows[1:]:
        if all(not c.strip() for c in cells):
            continue
        cells = cells + [""] * (len(header) - len(cells))
        row = dict(zip(header, cells))
        out.append({"email": row["RecipientsEmail"].strip(), "name": row["RecipientsName"],
                    "custom": {h: row[h] for h in header if h not in RESERVED}})
    return out


def quote(v):
    return '"' + v.replace('"', '""') + '"'


# Values an integrator's roster really holds: padded cells, coordinates and
# inch marks with bare quotes, apostrophes, commas and line breaks in
# quoted cells, accents and scripts.
PIECES = ["Ann", "Lee", "O'Neil", "Zoë", "日本", "مرحبا", "Math", "B+", "12\" ruler", "5'11\"", "37°36'37.8\"N",
          "122°22'30.4\"W", "x", "a,b", "line\nbreak", "cr\r\nlf", "say \"hi\"", "tab\there", "\\back", "100%"]


def random_value(rng):
    v = " ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 3)))
    pad_l = rng.choice(["", "", " ", "  ", "\t"])
    pad_r = rng.choice(["", "", " ", "   "])
    return pad_l + v + pad_r


def encode_cell(rng, v):
    """A cell as a spreadsheet or a hand-written file would spell it."""
    needs_quotes = any(c in v for c in ",\r\n") or v.startswith('"')
    if needs_quotes or rng.random() < 0.3:
        return quote(v)
    return v  # bare: spaces and inner quotes are data


def generated_roster(rng, n):
    header = ["RecipientsEmail", "RecipientsName", "IssueDate", "Course", "Location", "Note"]
    lines = [",".join(header) + "\r\n"]
    for i in range(n):
        email = rng.choice(["", " ", "  "]) + "user%d@example.com" % i + rng.choice(["", " ", "\t"])
        cells = [email, random_value(rng), "%02d-03-2025" % (1 + i % 28),
                 random_value(rng), random_value(rng), random_value(rng)]
        enc = [encode_cell(rng, c) if k != 0 else (quote(c) if rng.random() < 0.2 else c)
               for k, c in enumerate(cells)]
        lines.append(",".join(enc) + rng.choice(["\r\n", "\n"]))
    return "".join(lines).encode()


def check_same(srv, demo, psql, data):
    want = python_reading(data)
    r = upload(srv, demo, data)
    assert r.status_code == 201, r.text
    got = stored(psql, r.json()["data"]["id"])
    assert len(got) == len(want)
    diff = [(i + 1, g, w) for i, (g, w) in enumerate(zip(got, want))
            if (g["email"], g["name"], g["custom"]) != (w["email"], w["name"], w["custom"])]
    assert not diff, diff[:3]
    return r.json()["data"], got


def test_generated_roster_matches_python_csv(srv, demo, psql):
    rng = random.Random(20)
    data = generated_roster(rng, 2500)
    want = python_reading(data)
    # The roster really exercises what used to be lost: padded cells and
    # bare quotes in unquoted cells.
    padded = sum(1 for w in want if w["name"] != w["name"].strip()
                 or any(v != v.strip() for v in w["custom"].values()))
    assert padded > 700
    assert b'"N,' in data or b'"N\r\n' in data or b'"N\n' in data
    batch, got = check_same(srv, demo, psql, data)
    assert batch["total_certificates"] == 2500 and batch["failed_certificates"] == 0
    assert not [g for g in got if g["status"] == "failed"]


def test_values_through_the_api(srv, demo):
    data = (b"RecipientsEmail,RecipientsName,Location\r\n"
            b"  ada@example.com , Ada Lovelace ,37\xc2\xb036'37.8\"N\r\n")
    r = upload(srv, demo, data)
    assert r.status_code == 201, r.text
    bid = r.json()["data"]["id"]
    r = requests.get(srv.url + "/business/certificates", params={"batch_id": bid},
                     headers={"Authorization": "Bearer " + demo["token"]})
    assert r.status_code == 200, r.text
    c = r.json()["data"][0]
    assert c["email"] == "ada@example.com"
    assert c["name"] == " Ada Lovelace "
    assert c["custom_data"] == {"Location": "37°36'37.8\"N"}


# csv-spectrum's cases (github.com/max-mapper/csv-spectrum), each given the
# two required columns in front.
SPECTRUM = {
    "comma_in_quotes": 'first,last,address,city,zip\nJohn,Doe,120 any st.,"Anytown, WW",08123\n',
    "empty": 'a,b,c\n1,"",""\n2,3,4\n',
    "empty_crlf": 'a,b,c\r\n1,"",""\r\n2,3,4\r\n',
    "escaped_quotes": 'a,b\n1,"ha ""ha"" ha"\n3,4\n',
    "json": 'key,val\n1,"{""type"": ""Point"", ""coordinates"": [102.0, 0.5]}"\n',
    "newlines": 'a,b,c\n1,2,3\n"Once upon \na time",5,6\n7,8,9\n',
    "newlines_crlf": 'a,b,c\r\n1,2,3\r\n"Once upon \r\na time",5,6\r\n7,8,9\r\n',
    "quotes_and_newlines": 'a,b\n1,"ha \n""ha"" \nha"\n3,4\n',
    "simple": 'a,b,c\n1,2,3\n',
    "simple_crlf": 'a,b,c\r\n1,2,3\r\n',
    "utf8": 'a,b,c\n1,2,3\n4,5,ʤ\n',
    "location_coordinates": "Location,Latitude,Longitude\nSan Francisco,37°36'37.8\"N,122°22'30.4\"W\n"
                            "Sydney,33°52'04.9\"S,151°12'26.8\"E\n",
    # not in csv-spectrum: the readings where lenient parsers differ
    "text_after_closing_quote": 'a,b\n"ab"cd,"x" \n',
    "quotes_mid_field": 'a,b\nx"y"z,a""b\n',
    "spaces_around": 'a,b\n  padded  ,\t tab \t\n',
    "lone_cr": 'a,b\r1,2\r3,4\r',
}


def spectrum_roster(text):
    """Prefixes every record with an e-mail and a name cell, keeping the
    case's own bytes: a record ends at a line end outside quotes (even quote
    count so far, which holds for these cases)."""
    out, buf, n = [], "", 0
    for line in text.splitlines(keepends=True):
        buf += line
        if buf.count('"') % 2 == 0:
            out.append(("RecipientsEmail,RecipientsName," if n == 0 else "s%d@example.com,Name %d," % (n, n)) + buf)
            buf, n = "", n + 1
    assert not buf and n == len(list(csv.reader(io.StringIO(text, newline=""))))
    return "".join(out).encode()


@pytest.mark.parametrize("case", sorted(SPECTRUM))
def test_csv_spectrum(srv, demo, psql, case):
    data = spectrum_roster(SPECTRUM[case])
    check_same(srv, demo, psql, data)


def test_location_coordinates_values(srv, demo, psql):
    """The exact cells, spelled out, not only "as Python reads them"."""
    _, got = check_same(srv, demo, psql, spectrum_roster(SPECTRUM["location_coordinates"]))
    assert got[0]["custom"] == {"Location": "San Francisco", "Latitude": "37°36'37.8\"N",
                                "Longitude": "122°22'30.4\"W"}
    _, got = check_same(srv, demo, psql, spectrum_roster(SPECTRUM["text_after_closing_quote"]))
    assert got[0]["custom"] == {"a": "abcd", "b": "x "}


def test_unterminated_quote_is_still_422(srv, demo, psql):
    """Python keeps the rest of the file as one cell; we refuse it."""
    r = upload(srv, demo, b'RecipientsEmail,RecipientsName\r\na@b.co,"Ann\r\nb@b.co,Bob\r\n')
    assert r.status_code == 422, r.text
    assert "unterminated quoted field" in r.json()["errors"]["csv_file"][0]
