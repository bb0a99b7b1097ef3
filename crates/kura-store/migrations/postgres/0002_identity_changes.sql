-- Nodes of a cluster cache each user's tags and policies. Every change to them, by any node
-- (or by hand), is announced on the channel kura_identity with the user's name, delivered
-- when the changing transaction commits; each node drops its copy on hearing it. The
-- trigger's argument names the column holding the user's name.
CREATE FUNCTION kura_identity_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('kura_identity', to_jsonb(OLD) ->> TG_ARGV[0]);
    ELSE
        PERFORM pg_notify('kura_identity', to_jsonb(NEW) ->> TG_ARGV[0]);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION kura_identity_changed('name');
CREATE TRIGGER user_policies_changed AFTER INSERT OR UPDATE OR DELETE ON user_policies
    FOR EACH ROW EXECUTE FUNCTION kura_identity_changed('user_name');
