-- 020_mail: the e-mail outbox, shared by every surface (core/mail.h sends
-- it over SMTP).
--
-- A surface queues a message with bd_mail_queue in the same transaction as
-- the state change that calls for it, so no committed change loses its
-- message and no rolled-back one sends one. A message names what composes
-- it (kind, registered by the surface: bd_mail_register) and the surface's
-- object (ref); the bytes are composed when it is sent, from that object
-- as it is then, identically on every attempt (the Date is created_at, the
-- Message-ID is made of id). NOTIFY bd_mail wakes the sender of every
-- process (which also polls).
--
-- Messages are claimed like jobs (a lease; SKIP LOCKED). An SMTP 2xx to
-- the end of DATA is recorded first (state sent): a sent message is never
-- claimed again. 4xx answers and transport errors are retried with backoff
-- for BATCHD_SMTP_RETRY_FOR_S; 5xx answers to RCPT or DATA fail the message
-- with the server's reply. A surface follows the outcomes with a trigger on
-- bd_mail_messages (state).

CREATE TABLE bd_mail_messages (
  id              text        PRIMARY KEY,            -- msg_ + 32 hex; the Message-ID's local part
  surface         text        NOT NULL,
  kind            text        NOT NULL,               -- the composer (bd_mail_register)
  ref             text        NOT NULL,               -- the surface's object (e.g. a certificate id)
  recipient       text        NOT NULL,               -- the envelope's RCPT TO
  state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
  attempts        int         NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  lease_until     timestamptz,                        -- claimed by a process until then
  locked_by       text,
  last_code       int,                                -- the server's last reply code (NULL: none)
  last_error      text,                               -- what went wrong last (the server's reply)
  last_attempt_at timestamptz,
  sent_at         timestamptz,                        -- the server accepted the message
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bd_mail_messages_due ON bd_mail_messages (next_attempt_at) WHERE state = 'pending';
CREATE INDEX bd_mail_messages_ref ON bd_mail_messages (surface, ref);

-- Queues one message; returns its id.
CREATE FUNCTION bd_mail_queue(surf text, knd text, rf text, rcpt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  mid text := 'msg_' || replace(gen_random_uuid()::text, '-', '');
BEGIN
  INSERT INTO bd_mail_messages (id, surface, kind, ref, recipient) VALUES (mid, surf, knd, rf, rcpt);
  PERFORM pg_notify('bd_mail', '');   -- one per transaction (NOTIFY folds duplicates)
  RETURN mid;
END $$;

-- Claims up to n due messages for `instance` for lease_s seconds: pending,
-- due, not leased (or the lease ran out: its process died mid-attempt, so
-- the server did not accept it, or did in the window the README names).
-- Oldest due first; SKIP LOCKED: a concurrent claim took them.
CREATE FUNCTION bd_mail_claim(instance text, n int, lease_s int)
RETURNS TABLE (id text, kind text, ref text, recipient text, attempts int, created_s bigint)
LANGUAGE sql AS $$
  WITH pick AS (
    SELECT m.id FROM bd_mail_messages m
     WHERE m.state = 'pending' AND m.next_attempt_at <= now() AND (m.lease_until IS NULL OR m.lease_until < now())
     ORDER BY m.next_attempt_at LIMIT n
     FOR UPDATE SKIP LOCKED
  )
  UPDATE bd_mail_messages m SET lease_until = now() + make_interval(secs => lease_s), locked_by = instance
    FROM pick WHERE m.id = pick.id
  RETURNING m.id, m.kind, m.ref, m.recipient, m.attempts, extract(epoch FROM m.created_at)::bigint
$$;

-- Records attempts, one transaction for all: ids[i] ended with outcome
-- outs[i] ('sent': accepted; 'failed': refused for good; 'retry': try
-- again), the server's code codes[i] (NULL: none) and errors[i]. A retry
-- is due after min(base * 2^attempts, 1 h) times a jitter of 0.5-1.0, or
-- fails once the message is retry_for_s old. 'sent' is recorded whatever
-- the message's state (the server took it: that must stick); the others
-- only on pending messages. Returns (i, state, next_in_ms) per message
-- changed, in (id) order, as every process locks them.
CREATE FUNCTION bd_mail_done_many(ids text[], outs text[], codes int[], errors text[], retry_base_ms int,
                                  retry_for_s int)
RETURNS TABLE (i int, state text, next_in_ms int)
LANGUAGE plpgsql AS $$
DECLARE
  k int;
  m bd_mail_messages;
  next_at timestamptz;
BEGIN
  FOR k IN SELECT u.ord FROM unnest(ids) WITH ORDINALITY u(id, ord) ORDER BY u.id LOOP
    IF outs[k] = 'sent' THEN
      UPDATE bd_mail_messages x SET state = 'sent', attempts = x.attempts + 1, last_code = codes[k],
             last_error = NULL, last_attempt_at = now(), sent_at = now(), lease_until = NULL, locked_by = NULL
       WHERE x.id = ids[k] AND x.state <> 'sent' RETURNING * INTO m;
      IF FOUND THEN
        RETURN QUERY SELECT k, 'sent'::text, NULL::int;
      END IF;
      CONTINUE;
    END IF;
    SELECT * INTO m FROM bd_mail_messages x WHERE x.id = ids[k] AND x.state = 'pending' FOR UPDATE;
    IF NOT FOUND THEN
      CONTINUE;
    END IF;
    IF outs[k] = 'failed' OR now() >= m.created_at + make_interval(secs => retry_for_s) THEN
      UPDATE bd_mail_messages x SET state = 'failed', attempts = x.attempts + 1, last_code = codes[k],
             last_error = errors[k], last_attempt_at = now(), lease_until = NULL, locked_by = NULL
       WHERE x.id = ids[k];
      RETURN QUERY SELECT k, 'failed'::text, NULL::int;
    ELSE
      next_at := least(now() + make_interval(secs => least(retry_base_ms::float8 * 2.0 ^ least(m.attempts, 40),
                                                           3600000.0) * (0.5 + random() / 2) / 1000.0),
                       m.created_at + make_interval(secs => retry_for_s));
      UPDATE bd_mail_messages x SET attempts = x.attempts + 1, last_code = codes[k], last_error = errors[k],
             last_attempt_at = now(), next_attempt_at = next_at, lease_until = NULL, locked_by = NULL
       WHERE x.id = ids[k];
      RETURN QUERY SELECT k, 'pending'::text, greatest(0, ceil(extract(epoch FROM next_at - now()) * 1000))::int;
    END IF;
  END LOOP;
END $$;

-- A message claimed by `instance` given back unsent (shutdown): its lease
-- is cleared without counting an attempt.
CREATE FUNCTION bd_mail_yield(mid text, instance text) RETURNS void LANGUAGE sql AS $$
  UPDATE bd_mail_messages SET lease_until = NULL, locked_by = NULL
   WHERE id = mid AND locked_by = instance AND state = 'pending'
$$;

-- The queue for the metrics: pending messages, how many are due now, and
-- the age in seconds of the oldest pending one (0 when none).
CREATE FUNCTION bd_mail_sweep() RETURNS TABLE (depth bigint, due bigint, oldest_s float8) LANGUAGE sql STABLE AS $$
  SELECT count(*), count(*) FILTER (WHERE m.next_attempt_at <= now()),
         coalesce(extract(epoch FROM now() - min(m.created_at))::float8, 0)
    FROM bd_mail_messages m WHERE m.state = 'pending'
$$;
