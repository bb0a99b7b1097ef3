-- Nodes of a cluster keep what reads need in memory: secrets with their versions, labels and
-- tags, access keys and settings. Every change to them, by any node (or by hand), is
-- announced on the channel kura_cache when the changing transaction commits: `s:<secret id>`,
-- `k:<access key id>` or `g:<setting>`. Each node drops its copy on hearing it. (A node also
-- sends itself `p:…` on this channel to learn that it has heard everything committed before.)
-- The rotation lease columns are left out: a lease is nothing a read shows.
CREATE FUNCTION kura_cache_changed() RETURNS trigger AS $$
DECLARE
    row jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        row := to_jsonb(OLD);
    ELSE
        row := to_jsonb(NEW);
    END IF;
    PERFORM pg_notify('kura_cache', TG_ARGV[0] || ':' || (row ->> TG_ARGV[1]));
    IF TG_OP = 'UPDATE' AND (to_jsonb(OLD) ->> TG_ARGV[1]) IS DISTINCT FROM (row ->> TG_ARGV[1]) THEN
        PERFORM pg_notify('kura_cache', TG_ARGV[0] || ':' || (to_jsonb(OLD) ->> TG_ARGV[1]));
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER secrets_cache_changed
    AFTER INSERT OR DELETE OR UPDATE OF name, arn, description, kms_key_id, created_at,
        changed_at, accessed_at, deleted_at, purge_at, resource_policy, rotation_enabled,
        rotation_function, rotation_after_days, rotation_schedule, rotation_duration,
        last_rotated_at, next_rotation_at, next_rotation_end, rotation_state, rotation_token,
        rotation_step, rotation_attempt, rotation_error, rotation_attempted_at,
        rotation_resume_at, rotation_window_end, tagged
    ON secrets FOR EACH ROW EXECUTE FUNCTION kura_cache_changed('s', 'id');
CREATE TRIGGER secret_versions_cache_changed AFTER INSERT OR UPDATE OR DELETE ON secret_versions
    FOR EACH ROW EXECUTE FUNCTION kura_cache_changed('s', 'secret_id');
CREATE TRIGGER version_stages_cache_changed AFTER INSERT OR UPDATE OR DELETE ON version_stages
    FOR EACH ROW EXECUTE FUNCTION kura_cache_changed('s', 'secret_id');
CREATE TRIGGER tags_cache_changed AFTER INSERT OR UPDATE OR DELETE ON tags
    FOR EACH ROW EXECUTE FUNCTION kura_cache_changed('s', 'secret_id');
CREATE TRIGGER access_keys_cache_changed AFTER INSERT OR UPDATE OR DELETE ON access_keys
    FOR EACH ROW EXECUTE FUNCTION kura_cache_changed('k', 'access_key_id');
CREATE TRIGGER settings_cache_changed AFTER INSERT OR UPDATE OR DELETE ON settings
    FOR EACH ROW EXECUTE FUNCTION kura_cache_changed('g', 'key');
