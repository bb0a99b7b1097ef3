-- The secrets trigger of 0005 named every column a read shows, so a column added later would
-- have been left out of the announcements (and other nodes would serve it stale). It now names
-- what is left out instead: an UPDATE that changes nothing but the rotation lease announces
-- nothing; every other change to the row does.
DROP TRIGGER secrets_cache_changed ON secrets;
CREATE FUNCTION kura_secret_cache_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (to_jsonb(OLD) - 'lease_owner' - 'lease_expires_at')
           = (to_jsonb(NEW) - 'lease_owner' - 'lease_expires_at') THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('kura_cache', 's:' || OLD.id);
    ELSE
        PERFORM pg_notify('kura_cache', 's:' || NEW.id);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER secrets_cache_changed AFTER INSERT OR UPDATE OR DELETE ON secrets
    FOR EACH ROW EXECUTE FUNCTION kura_secret_cache_changed();
