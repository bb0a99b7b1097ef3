"""Every secrets operation kura serves, driven through boto3 (a second client family).

Run by tests/interop.rs with KURA_ENDPOINT and AWS_SHARED_CREDENTIALS_FILE set. Exits non-zero
on the first behaviour that differs from AWS's.
"""
import base64
import json
import os
import time
import uuid

import boto3
import botocore.exceptions

sm = boto3.client(
    "secretsmanager",
    endpoint_url=os.environ["KURA_ENDPOINT"],
    region_name="us-east-1",
)


CHECKS = 0


def check(ok, detail=""):
    """An explicit check: unlike `assert`, it does not vanish under PYTHONOPTIMIZE."""
    global CHECKS
    CHECKS += 1
    if not ok:
        raise AssertionError(detail)


def code_of(call, **kwargs):
    try:
        call(**kwargs)
    except botocore.exceptions.ClientError as e:
        check(e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response)
        return e.response["Error"]["Code"]
    raise AssertionError(f"{call.__name__} succeeded, an error was expected")


# Create, read, idempotent retry.
token = str(uuid.uuid4())
created = sm.create_secret(
    Name="py/db", SecretString='{"password":"p1"}', Description="py db",
    Tags=[{"Key": "team", "Value": "a"}], ClientRequestToken=token,
)
check(created["VersionId"] == token)
again = sm.create_secret(Name="py/db", SecretString='{"password":"p1"}', ClientRequestToken=token)
check(again["ARN"] == created["ARN"])
check(code_of(sm.create_secret, Name="py/db", SecretString="other") == "ResourceExistsException")
got = sm.get_secret_value(SecretId=created["ARN"])
check(json.loads(got["SecretString"]) == {"password": "p1"})
check(got["VersionStages"] == ["AWSCURRENT"])

# Binary values round-trip.
blob = bytes(range(256))
sm.create_secret(Name="py/blob", SecretBinary=blob)
check(sm.get_secret_value(SecretId="py/blob")["SecretBinary"] == blob)

# Versions and labels.
v2 = sm.put_secret_value(SecretId="py/db", SecretString='{"password":"p2"}')["VersionId"]
v3 = sm.update_secret(SecretId="py/db", SecretString='{"password":"p3"}', Description="d3")["VersionId"]
stages = sm.describe_secret(SecretId="py/db")["VersionIdsToStages"]
check(stages == {v3: ["AWSCURRENT"], v2: ["AWSPREVIOUS"]}, stages)
sm.update_secret_version_stage(
    SecretId="py/db", VersionStage="AWSCURRENT", MoveToVersionId=v2, RemoveFromVersionId=v3
)
check(json.loads(sm.get_secret_value(SecretId="py/db")["SecretString"]) == {"password": "p2"})
check(sm.get_secret_value(SecretId="py/db", VersionStage="AWSPREVIOUS")["VersionId"] == v3)
ids = [v["VersionId"] for v in sm.list_secret_version_ids(SecretId="py/db", IncludeDeprecated=True)["Versions"]]
check(set(ids) == {token, v2, v3}, ids)
check(code_of(
    sm.update_secret_version_stage, SecretId="py/db", VersionStage="AWSCURRENT", MoveToVersionId=v3
) == "InvalidParameterException")

# Tags.
sm.tag_resource(SecretId="py/db", Tags=[{"Key": "env", "Value": "prod"}])
sm.untag_resource(SecretId="py/db", TagKeys=["team"])
check(sm.describe_secret(SecretId="py/db")["Tags"] == [{"Key": "env", "Value": "prod"}])

# Listing with a paginator, filters and sorting.
for i in range(7):
    sm.create_secret(Name=f"py/many/{i}", SecretString=f"m{i}")
names = []
for page in sm.get_paginator("list_secrets").paginate(
    Filters=[{"Key": "name", "Values": ["py/many/"]}], PaginationConfig={"PageSize": 3}
):
    names += [s["Name"] for s in page["SecretList"]]
check(sorted(names) == [f"py/many/{i}" for i in range(7)], names)
by_name = sm.list_secrets(SortBy="name", SortOrder="desc", Filters=[{"Key": "tag-key", "Values": ["env"]}])
check([s["Name"] for s in by_name["SecretList"]] == ["py/db"])
check(code_of(sm.list_secrets, NextToken="forged") == "InvalidNextTokenException")

# Batch reads.
batch = sm.batch_get_secret_value(SecretIdList=["py/many/0", "py/many/1", "py/none"])
check(sorted(v["SecretString"] for v in batch["SecretValues"]) == ["m0", "m1"])
check([(e["SecretId"], e["ErrorCode"]) for e in batch["Errors"]] == [("py/none", "ResourceNotFoundException")])
seen, kwargs = [], {}
while True:
    page = sm.batch_get_secret_value(Filters=[{"Key": "name", "Values": ["py/many/"]}], MaxResults=4, **kwargs)
    check(len(page["SecretValues"]) <= 4)
    seen += [v["SecretString"] for v in page["SecretValues"]]
    if "NextToken" not in page:
        break
    kwargs = {"NextToken": page["NextToken"]}
check(sorted(seen) == [f"m{i}" for i in range(7)], seen)

# Resource policies.
policy = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                   "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
})
check(sm.validate_resource_policy(ResourcePolicy=policy)["PolicyValidationPassed"] is True)
sm.put_resource_policy(SecretId="py/db", ResourcePolicy=policy, BlockPublicPolicy=True)
check(json.loads(sm.get_resource_policy(SecretId="py/db")["ResourcePolicy"]) == json.loads(policy))
sm.delete_resource_policy(SecretId="py/db")
check("ResourcePolicy" not in sm.get_resource_policy(SecretId="py/db"))
public = policy.replace('{"AWS": "arn:aws:iam::123456789012:root"}', '"*"')
check(code_of(sm.put_resource_policy, SecretId="py/db", ResourcePolicy=public, BlockPublicPolicy=True) == "PublicPolicyException")
check(code_of(sm.put_resource_policy, SecretId="py/db", ResourcePolicy="{}") == "MalformedPolicyDocumentException")

# Passwords.
pw = sm.get_random_password(PasswordLength=40, ExcludePunctuation=True)["RandomPassword"]
check(len(pw) == 40 and pw.isalnum(), pw)

# Deletion window, restore, forced deletion.
deleted = sm.delete_secret(SecretId="py/blob", RecoveryWindowInDays=7)
check("DeletionDate" in deleted)
check("DeletedDate" in sm.describe_secret(SecretId="py/blob"))
check(code_of(sm.get_secret_value, SecretId="py/blob") == "InvalidRequestException")
sm.restore_secret(SecretId="py/blob")
check(sm.get_secret_value(SecretId="py/blob")["SecretBinary"] == blob)
sm.delete_secret(SecretId="py/blob", ForceDeleteWithoutRecovery=True)
check(code_of(sm.describe_secret, SecretId="py/blob") == "ResourceNotFoundException")

# Replication is refused with a clear error.
check(code_of(sm.replicate_secret_to_regions, SecretId="py/db", AddReplicaRegions=[{"Region": "eu-west-1"}]) == "InvalidRequestException")
check(code_of(sm.remove_regions_from_replication, SecretId="py/db", RemoveReplicaRegions=["eu-west-1"]) == "InvalidRequestException")
check(code_of(sm.stop_replication_to_replica, SecretId="py/db") == "InvalidRequestException")

# Rotation with the built-in kura-password function, then a schedule and its cancellation.
rotation_fn = "arn:aws:lambda:{}:{}:function:kura-password".format(*created["ARN"].split(":")[3:5])
before = sm.get_secret_value(SecretId="py/db")
rotate_token = str(uuid.uuid4())
rotated = sm.rotate_secret(SecretId="py/db", RotationLambdaARN=rotation_fn, ClientRequestToken=rotate_token)
check(rotated["VersionId"] == rotate_token, rotated)
for _ in range(600):
    now = sm.get_secret_value(SecretId="py/db")
    if now["VersionId"] == rotate_token:
        break
    time.sleep(0.1)
check(now["VersionId"] == rotate_token, f"rotation did not finish: {now['VersionId']}")
check(now["SecretString"] != before["SecretString"], "the value did not change")
check(sm.get_secret_value(SecretId="py/db", VersionStage="AWSPREVIOUS")["VersionId"] == before["VersionId"])
described = sm.describe_secret(SecretId="py/db")
check(described["RotationEnabled"] is True and described["RotationLambdaARN"] == rotation_fn, described)
check("LastRotatedDate" in described, described)
sm.rotate_secret(SecretId="py/db", RotationRules={"ScheduleExpression": "rate(10 days)"}, RotateImmediately=False)
described = sm.describe_secret(SecretId="py/db")
check(described["RotationRules"]["ScheduleExpression"] == "rate(10 days)", described)
check("NextRotationDate" in described, described)
cancelled = sm.cancel_rotate_secret(SecretId="py/db")
check(cancelled["ARN"] == created["ARN"], cancelled)
described = sm.describe_secret(SecretId="py/db")
check(described["RotationEnabled"] is False and "NextRotationDate" not in described, described)
check(sm.get_secret_value(SecretId="py/db")["VersionId"] == rotate_token, "cancelling moved nothing")

print(f"boto3 scenario: ok ({CHECKS} checks)")
