-- 001_core: tables shared by every surface.

-- Durable jobs. A job is claimed by one process with FOR UPDATE SKIP LOCKED
-- and a lease; a process that dies stops renewing, the lease expires and any
-- process claims the job again. Handlers make their work idempotent per item.
CREATE TABLE bd_jobs (
  id           bigserial PRIMARY KEY,
  kind         text        NOT NULL,              -- handler name, e.g. 'qr.batch'
  ref          text        NOT NULL,              -- what it works on (a batch id)
  payload      jsonb       NOT NULL DEFAULT '{}',
  state        text        NOT NULL DEFAULT 'queued'
               CHECK (state IN ('queued', 'running', 'done', 'failed')),
  attempts     int         NOT NULL DEFAULT 0,    -- claims that did not end in done
  max_attempts int         NOT NULL DEFAULT 20,
  run_at       timestamptz NOT NULL DEFAULT now(),
  lease_until  timestamptz,                       -- running: re-claimable after this
  locked_by    text,                              -- instance id of the claimer
  last_error   text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bd_jobs_queued ON bd_jobs (run_at, id) WHERE state = 'queued';
CREATE INDEX bd_jobs_running ON bd_jobs (lease_until) WHERE state = 'running';
CREATE UNIQUE INDEX bd_jobs_one_active ON bd_jobs (kind, ref) WHERE state IN ('queued', 'running');

-- Idempotency-Key store (IETF httpapi draft semantics): one row per
-- (credential, key); the first request's response is kept until expires_at.
CREATE TABLE bd_idempotency (
  credential   text        NOT NULL,
  key          text        NOT NULL,
  body_hash    text        NOT NULL,
  state        text        NOT NULL CHECK (state IN ('in_flight', 'done')),
  status       int,
  content_type text,
  body         bytea,
  locked_until timestamptz,                       -- in_flight rows older than this are abandoned
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  PRIMARY KEY (credential, key)
);
CREATE INDEX bd_idempotency_expires ON bd_idempotency (expires_at);

-- Tenants: one per seeded/registered customer; every surface's top-level
-- object (institution, workspace, brand) belongs to one.
CREATE TABLE bd_tenants (
  id         bigserial PRIMARY KEY,
  name       text        NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
