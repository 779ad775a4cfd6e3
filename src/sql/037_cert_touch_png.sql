-- A certificate's PNG is derived (rendered on its first request, migration
-- 021), so storing it (and with it png_sha256) is not a change of the
-- certificate: updated_at stays, and a certificate read before and after
-- its PNG was first fetched is the same object.
CREATE OR REPLACE FUNCTION biz_certificates_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF to_jsonb(NEW) - 'customer_id' - 'updated_at' - 'png_sha256'
       IS DISTINCT FROM to_jsonb(OLD) - 'customer_id' - 'updated_at' - 'png_sha256' THEN
    NEW.updated_at := now();
  END IF;
  RETURN NEW;
END $$;
