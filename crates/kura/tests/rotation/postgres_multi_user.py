"""A multi-user PostgreSQL rotation function for AWS Lambda, in the shape of AWS's
SecretsManagerRDSPostgreSQLRotationMultiUser template (written for kura's tests, not AWS's code).

The secret is {"engine", "host", "port", "username", "password", "dbname"?, "masterarn"}. Each
rotation switches between two database users, `<user>` and `<user>_clone`, so the login that
applications hold keeps working while the other one gets a new password:

  createSecret  AWSPENDING = AWSCURRENT with the other username and a new random password.
  setSecret     with the administrator secret named by `masterarn` (read with GetSecretValue,
                which the function's execution policy must allow): create the other user with
                the current user's role memberships, or set its password.
  testSecret    log in as the pending user.
  finishSecret  move AWSCURRENT to the pending version.

Nothing here knows about kura: a plain boto3 client and the pg8000 driver.
"""
import json
import logging

import boto3
import pg8000.native

logger = logging.getLogger()
logger.setLevel(logging.INFO)

CLONE_SUFFIX = '_clone'
EXCLUDE_CHARACTERS = '/@"\'\\'


def lambda_handler(event, context):
    arn = event['SecretId']
    token = event['ClientRequestToken']
    step = event['Step']
    client = boto3.client('secretsmanager')

    metadata = client.describe_secret(SecretId=arn)
    if not metadata.get('RotationEnabled'):
        raise ValueError("Secret %s is not enabled for rotation" % arn)
    versions = metadata.get('VersionIdsToStages', {})
    if token not in versions:
        raise ValueError("Secret version %s has no stage for rotation of secret %s." % (token, arn))
    if 'AWSCURRENT' in versions[token]:
        logger.info("Secret version %s already set as AWSCURRENT for secret %s.", token, arn)
        return
    if 'AWSPENDING' not in versions[token]:
        raise ValueError("Secret version %s not set as AWSPENDING for rotation of secret %s." % (token, arn))

    steps = {
        'createSecret': create_secret,
        'setSecret': set_secret,
        'testSecret': test_secret,
        'finishSecret': finish_secret,
    }
    if step not in steps:
        raise ValueError("Invalid step parameter %s" % step)
    steps[step](client, arn, token)


def create_secret(client, arn, token):
    current = get_secret_dict(client, arn, 'AWSCURRENT')
    try:
        get_secret_dict(client, arn, 'AWSPENDING', token)
        logger.info("createSecret: the pending version of %s already has a value.", arn)
        return
    except client.exceptions.ResourceNotFoundException:
        pass
    pending = dict(current)
    username = current['username']
    if username.endswith(CLONE_SUFFIX):
        pending['username'] = username[:-len(CLONE_SUFFIX)]
    else:
        pending['username'] = username + CLONE_SUFFIX
    pending['password'] = client.get_random_password(
        ExcludeCharacters=EXCLUDE_CHARACTERS)['RandomPassword']
    client.put_secret_value(SecretId=arn, ClientRequestToken=token,
                            SecretString=json.dumps(pending), VersionStages=['AWSPENDING'])
    logger.info("createSecret: put the pending version %s of %s.", token, arn)


def set_secret(client, arn, token):
    current = get_secret_dict(client, arn, 'AWSCURRENT')
    pending = get_secret_dict(client, arn, 'AWSPENDING', token)
    conn = connect(pending)
    if conn is not None:
        conn.close()
        logger.info("setSecret: the pending login of %s works already.", arn)
        return
    master = get_secret_dict(client, current['masterarn'], 'AWSCURRENT')
    conn = connect(master)
    if conn is None:
        raise ValueError("setSecret: cannot log in with the administrator secret %s" % current['masterarn'])
    try:
        user = pending['username']
        exists = conn.run("SELECT 1 FROM pg_roles WHERE rolname = :name", name=user)
        password = pg8000.native.literal(pending['password'])
        if exists:
            conn.run("ALTER ROLE %s WITH PASSWORD %s" % (pg8000.native.identifier(user), password))
        else:
            conn.run("CREATE ROLE %s WITH LOGIN PASSWORD %s" % (pg8000.native.identifier(user), password))
            # The new user gets what the current one has, as AWS's template copies grants.
            roles = conn.run(
                "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
                "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = :name",
                name=current['username'])
            for (role,) in roles:
                conn.run("GRANT %s TO %s" % (pg8000.native.identifier(role), pg8000.native.identifier(user)))
    finally:
        conn.close()
    logger.info("setSecret: set the pending login of %s in the database.", arn)


def test_secret(client, arn, token):
    conn = connect(get_secret_dict(client, arn, 'AWSPENDING', token))
    if conn is None:
        raise ValueError("testSecret: the pending login of %s is refused" % arn)
    try:
        conn.run("SELECT now()")
    finally:
        conn.close()
    logger.info("testSecret: the pending login of %s works.", arn)


def finish_secret(client, arn, token):
    metadata = client.describe_secret(SecretId=arn)
    current_version = None
    for version, stages in metadata['VersionIdsToStages'].items():
        if 'AWSCURRENT' in stages:
            if version == token:
                return
            current_version = version
            break
    client.update_secret_version_stage(SecretId=arn, VersionStage='AWSCURRENT',
                                       MoveToVersionId=token, RemoveFromVersionId=current_version)
    logger.info("finishSecret: AWSCURRENT of %s is version %s.", arn, token)


def connect(secret):
    """A connection with the secret's login, or None when the server refuses it."""
    try:
        return pg8000.native.Connection(
            user=secret['username'], password=secret['password'], host=secret['host'],
            port=int(secret.get('port', 5432)), database=secret.get('dbname', 'postgres'),
            timeout=10)
    except pg8000.native.DatabaseError:
        return None


def get_secret_dict(client, arn, stage, token=None):
    kwargs = {'SecretId': arn, 'VersionStage': stage}
    if token:
        kwargs['VersionId'] = token
    secret = json.loads(client.get_secret_value(**kwargs)['SecretString'])
    for field in ('engine', 'host', 'username', 'password'):
        if field not in secret:
            raise KeyError("%s key is missing from the secret JSON" % field)
    if secret['engine'] != 'postgres':
        raise KeyError("Database engine must be set to 'postgres' in order to use this rotation lambda")
    return secret
