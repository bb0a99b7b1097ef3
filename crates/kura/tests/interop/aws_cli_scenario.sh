#!/usr/bin/env bash
# Every secrets operation kura serves, through the AWS CLI. Run by tests/interop.rs with
# KURA_ENDPOINT and AWS_SHARED_CREDENTIALS_FILE set; fails on the first unexpected answer.
set -euo pipefail
sm() { aws --endpoint-url "$KURA_ENDPOINT" --region us-east-1 secretsmanager "$@"; }
expect() { # expect WANT GOT WHAT
  if [ "$1" != "$2" ]; then echo "FAIL $3: wanted [$1], got [$2]" >&2; exit 1; fi
}
fails_with() { # fails_with CODE command...
  local code=$1; shift
  local out
  if out=$("$@" 2>&1); then echo "FAIL: $* succeeded, expected $code" >&2; exit 1; fi
  case "$out" in *"($code)"*) ;; *) echo "FAIL: $* gave [$out], expected $code" >&2; exit 1 ;; esac
}

arn=$(sm create-secret --name cli/app --secret-string cli-value-one-7d1e --description first \
  --tags Key=team,Value=a --query ARN --output text)
expect cli-value-one-7d1e "$(sm get-secret-value --secret-id "$arn" --query SecretString --output text)" "read by ARN"
fails_with ResourceExistsException sm create-secret --name cli/app --secret-string x

printf 'bin\0ary' > "$TMPDIR/blob"
sm create-secret --name cli/blob --secret-binary "fileb://$TMPDIR/blob" >/dev/null
sm get-secret-value --secret-id cli/blob --query SecretBinary --output text | base64 -d > "$TMPDIR/back"
cmp "$TMPDIR/blob" "$TMPDIR/back"

v2=$(sm put-secret-value --secret-id cli/app --secret-string two --query VersionId --output text)
v3=$(sm update-secret --secret-id cli/app --secret-string three --query VersionId --output text)
expect AWSPREVIOUS "$(sm describe-secret --secret-id cli/app --query "VersionIdsToStages.\"$v2\"[0]" --output text)" "previous"
sm update-secret-version-stage --secret-id cli/app --version-stage AWSCURRENT \
  --move-to-version-id "$v2" --remove-from-version-id "$v3" >/dev/null
expect two "$(sm get-secret-value --secret-id cli/app --query SecretString --output text)" "moved current"
expect three "$(sm get-secret-value --secret-id cli/app --version-stage AWSPREVIOUS --query SecretString --output text)" "dragged previous"
expect 3 "$(sm list-secret-version-ids --secret-id cli/app --include-deprecated --query 'length(Versions)' --output text)" "versions"

sm tag-resource --secret-id cli/app --tags Key=env,Value=prod
sm untag-resource --secret-id cli/app --tag-keys team
expect env "$(sm describe-secret --secret-id cli/app --query 'Tags[0].Key' --output text)" "tags"

for i in 1 2 3 4 5; do sm create-secret --name "cli/many/$i" --secret-string "m$i" >/dev/null; done
# The CLI follows NextToken itself; a page size of 2 makes it take several pages.
expect 5 "$(sm list-secrets --filters Key=name,Values=cli/many/ --page-size 2 --query 'SecretList[].Name' --output text | wc -w)" "paged listing"
expect "m1 m2" "$(sm batch-get-secret-value --secret-id-list cli/many/1 cli/many/2 --query 'SecretValues[].SecretString' --output text | tr '\t' ' ')" "batch"

policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}'
expect True "$(sm validate-resource-policy --resource-policy "$policy" --query PolicyValidationPassed --output text)" "validate"
sm put-resource-policy --secret-id cli/app --resource-policy "$policy" --block-public-policy >/dev/null
sm get-resource-policy --secret-id cli/app --query ResourcePolicy --output text | grep -q 123456789012
sm delete-resource-policy --secret-id cli/app >/dev/null
expect None "$(sm get-resource-policy --secret-id cli/app --query ResourcePolicy --output text)" "policy deleted"

expect 24 "$(sm get-random-password --password-length 24 --query 'length(RandomPassword)' --output text)" "password"

sm delete-secret --secret-id cli/blob --recovery-window-in-days 7 >/dev/null
fails_with InvalidRequestException sm get-secret-value --secret-id cli/blob
sm restore-secret --secret-id cli/blob >/dev/null
sm delete-secret --secret-id cli/blob --force-delete-without-recovery >/dev/null
fails_with ResourceNotFoundException sm describe-secret --secret-id cli/blob
fails_with InvalidRequestException sm replicate-secret-to-regions --secret-id cli/app --add-replica-regions Region=eu-west-1
fails_with InvalidRequestException sm remove-regions-from-replication --secret-id cli/app --remove-replica-regions eu-west-1
fails_with InvalidRequestException sm stop-replication-to-replica --secret-id cli/app

# Rotation with the built-in kura-password function, then a schedule and its cancellation.
fn_arn="arn:aws:lambda:$(cut -d: -f4 <<<"$arn"):$(cut -d: -f5 <<<"$arn"):function:kura-password"
old_version=$(sm get-secret-value --secret-id cli/app --query VersionId --output text)
rot=11111111-2222-3333-4444-$(printf '%012d' $$)
expect "$rot" "$(sm rotate-secret --secret-id cli/app --rotation-lambda-arn "$fn_arn" \
  --client-request-token "$rot" --query VersionId --output text)" "rotate-secret"
for _ in $(seq 300); do
  [ "$(sm get-secret-value --secret-id cli/app --query VersionId --output text)" = "$rot" ] && break
  sleep 0.2
done
expect "$rot" "$(sm get-secret-value --secret-id cli/app --query VersionId --output text)" "rotated current"
expect "$old_version" "$(sm get-secret-value --secret-id cli/app --version-stage AWSPREVIOUS --query VersionId --output text)" "rotated previous"
[ "$(sm get-secret-value --secret-id cli/app --query SecretString --output text)" != two ] \
  || { echo "FAIL rotation: the value did not change" >&2; exit 1; }
sm rotate-secret --secret-id cli/app --rotation-rules 'ScheduleExpression=rate(10 days)' --no-rotate-immediately >/dev/null
expect True "$(sm describe-secret --secret-id cli/app --query RotationEnabled --output text)" "scheduled"
expect "$arn" "$(sm cancel-rotate-secret --secret-id cli/app --query ARN --output text)" "cancel-rotate-secret"
expect "False None" "$(sm describe-secret --secret-id cli/app --query '[RotationEnabled, NextRotationDate]' --output text | tr '\t' ' ')" "cancelled"
expect "$rot" "$(sm get-secret-value --secret-id cli/app --query VersionId --output text)" "cancelling moved nothing"

echo "aws cli scenario: ok"
