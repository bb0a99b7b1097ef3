"""A single-user rotation function written for AWS Lambda, in the style of AWS's rotation templates.

Nothing here knows about kura: the client is a plain boto3.client('secretsmanager'), which finds
the endpoint in AWS_ENDPOINT_URL_SECRETS_MANAGER (boto3 >= 1.28) and the region and credentials in
the usual AWS_* environment variables, exactly as it would on Lambda.

There is no real database behind this fixture. When ROTATION_TARGET_FILE is set, setSecret
"installs" the pending credential by writing the SHA-256 hex of its value to that file, and
testSecret checks the file against the pending value.
"""
import hashlib
import json
import logging
import os

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)

DEFAULT_EXCLUDE_CHARACTERS = '/@"\'\\'


def lambda_handler(event, context):
    """Secrets Manager rotation entry point.

    Args:
        event (dict): Step, SecretId (ARN), ClientRequestToken (pending version id).
        context: Lambda context object (unused).

    Raises:
        ValueError: the secret is not enabled for rotation, the version is not staged for
            rotation, or the step is unknown.
        ResourceNotFoundException: the secret does not exist.
    """
    arn = event['SecretId']
    token = event['ClientRequestToken']
    step = event['Step']

    service_client = boto3.client('secretsmanager')

    # Make sure the version is staged correctly.
    metadata = service_client.describe_secret(SecretId=arn)
    if not metadata.get('RotationEnabled'):
        logger.error("Secret %s is not enabled for rotation", arn)
        raise ValueError("Secret %s is not enabled for rotation" % arn)
    versions = metadata.get('VersionIdsToStages', {})
    if token not in versions:
        logger.error("Secret version %s has no stage for rotation of secret %s.", token, arn)
        raise ValueError("Secret version %s has no stage for rotation of secret %s." % (token, arn))
    if 'AWSCURRENT' in versions[token]:
        logger.info("Secret version %s already set as AWSCURRENT for secret %s.", token, arn)
        return
    if 'AWSPENDING' not in versions[token]:
        logger.error("Secret version %s not set as AWSPENDING for rotation of secret %s.", token, arn)
        raise ValueError("Secret version %s not set as AWSPENDING for rotation of secret %s." % (token, arn))

    if step == 'createSecret':
        create_secret(service_client, arn, token)
    elif step == 'setSecret':
        set_secret(service_client, arn, token)
    elif step == 'testSecret':
        test_secret(service_client, arn, token)
    elif step == 'finishSecret':
        finish_secret(service_client, arn, token)
    else:
        raise ValueError("Invalid step parameter %s" % step)


def create_secret(service_client, arn, token):
    """Create the pending version with a new random password, unless it already has a value.

    If the current value is a JSON object the new password goes into its "password" field and
    the other fields are kept; otherwise the whole secret string is the password.
    """
    # Make sure the current secret exists.
    current = service_client.get_secret_value(SecretId=arn, VersionStage='AWSCURRENT')

    # Only generate a new password if the pending version has no value yet.
    try:
        service_client.get_secret_value(SecretId=arn, VersionId=token, VersionStage='AWSPENDING')
        logger.info("createSecret: Successfully retrieved secret for %s.", arn)
        return
    except service_client.exceptions.ResourceNotFoundException:
        pass

    exclude_characters = os.environ.get('EXCLUDE_CHARACTERS', DEFAULT_EXCLUDE_CHARACTERS)
    password = service_client.get_random_password(ExcludeCharacters=exclude_characters)['RandomPassword']

    secret = _parse_json_object(current.get('SecretString'))
    if secret is not None:
        secret['password'] = password
        new_value = json.dumps(secret)
    else:
        new_value = password

    service_client.put_secret_value(
        SecretId=arn,
        ClientRequestToken=token,
        SecretString=new_value,
        VersionStages=['AWSPENDING'],
    )
    logger.info("createSecret: Successfully put secret for ARN %s and version %s.", arn, token)


def set_secret(service_client, arn, token):
    """Install the pending credential in the target system (here: a fingerprint file)."""
    target_file = os.environ.get('ROTATION_TARGET_FILE')
    if not target_file:
        logger.info("setSecret: No target system configured for %s; nothing to do.", arn)
        return

    fingerprint = _fingerprint(_pending_value(service_client, arn, token))
    # Write-then-rename so that testSecret never sees a half-written file.
    tmp_file = "%s.tmp-%d" % (target_file, os.getpid())
    with open(tmp_file, 'w', encoding='ascii') as f:
        f.write(fingerprint)
    os.replace(tmp_file, target_file)
    logger.info("setSecret: Successfully set the pending secret for %s in the target system.", arn)


def test_secret(service_client, arn, token):
    """Check that the target system accepts the pending credential."""
    target_file = os.environ.get('ROTATION_TARGET_FILE')
    if not target_file:
        logger.info("testSecret: No target system configured for %s; nothing to test.", arn)
        return

    expected = _fingerprint(_pending_value(service_client, arn, token))
    try:
        with open(target_file, encoding='ascii') as f:
            installed = f.read().strip()
    except FileNotFoundError:
        raise ValueError("testSecret: The target system has no credential for %s." % arn) from None
    if installed != expected:
        raise ValueError("testSecret: The target system does not accept the pending secret for %s." % arn)
    logger.info("testSecret: Successfully tested the pending secret for %s.", arn)


def finish_secret(service_client, arn, token):
    """Move AWSCURRENT to the pending version (Secrets Manager then relabels the old one AWSPREVIOUS)."""
    metadata = service_client.describe_secret(SecretId=arn)
    current_version = None
    for version, stages in metadata.get('VersionIdsToStages', {}).items():
        if 'AWSCURRENT' in stages:
            if version == token:
                logger.info("finishSecret: Version %s already marked as AWSCURRENT for %s.", version, arn)
                return
            current_version = version
            break

    kwargs = {'SecretId': arn, 'VersionStage': 'AWSCURRENT', 'MoveToVersionId': token}
    if current_version is not None:
        kwargs['RemoveFromVersionId'] = current_version
    service_client.update_secret_version_stage(**kwargs)
    logger.info("finishSecret: Successfully set AWSCURRENT stage to version %s for secret %s.", token, arn)


def _pending_value(service_client, arn, token):
    """The pending version's value as bytes (SecretString as UTF-8, or SecretBinary)."""
    pending = service_client.get_secret_value(SecretId=arn, VersionId=token, VersionStage='AWSPENDING')
    if 'SecretString' in pending:
        return pending['SecretString'].encode('utf-8')
    return pending['SecretBinary']


def _fingerprint(value):
    return hashlib.sha256(value).hexdigest()


def _parse_json_object(text):
    """The secret string as a dict if it is a JSON object, otherwise None."""
    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
