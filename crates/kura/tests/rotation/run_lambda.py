"""Runs a Lambda-style rotation function as a kura `command` function: the module named by the
first argument (default aws_style_rotation), from this directory.

kura runs this once per rotation step with the event as JSON on stdin (and in
KURA_ROTATION_EVENT). Exit status 0 means the step is done; on failure one line
"<ExceptionType>: <message>" goes to stderr and the exit status is 1.

Test-control hooks, active only when ROTATION_CONTROL_DIR is set, run before the handler:
  fail-<Step>   exists: print "injected failure at <Step>" to stderr and exit 1.
  block-<Step>  exists: write our pid to at-<Step>, then wait until block-<Step> is removed;
                exit 1 at once if our parent (the kura server) dies meanwhile.
  log           gets one line "<Step> <ClientRequestToken>" per invocation that gets past the hooks.
"""
import importlib
import json
import logging
import os
import sys
import time

POLL_INTERVAL_SECONDS = 0.05


def main():
    parent = os.getppid()
    try:
        event = read_event()
    except Exception as e:
        return fail(e)

    control_dir = os.environ.get('ROTATION_CONTROL_DIR')
    if control_dir:
        step = str(event.get('Step'))
        if os.path.exists(os.path.join(control_dir, 'fail-' + step)):
            print("injected failure at %s" % step, file=sys.stderr)
            return 1
        if not wait_while_blocked(control_dir, step, parent):
            return 1
        with open(os.path.join(control_dir, 'log'), 'a', encoding='utf-8') as log:
            log.write("%s %s\n" % (step, event.get('ClientRequestToken')))

    # Progress lines from the handler go to stderr, as they would go to CloudWatch on Lambda.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format='%(levelname)s %(message)s')
    logging.getLogger('botocore').setLevel(logging.WARNING)
    sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        module = sys.argv[1] if len(sys.argv) > 1 else 'aws_style_rotation'
        importlib.import_module(module).lambda_handler(event, None)
    except Exception as e:
        return fail(e)
    return 0


def read_event():
    """The event from stdin, or from KURA_ROTATION_EVENT when stdin is empty."""
    text = '' if sys.stdin is None else sys.stdin.read()
    if not text.strip():
        text = os.environ.get('KURA_ROTATION_EVENT', '')
    if not text.strip():
        raise ValueError("no rotation event on stdin or in KURA_ROTATION_EVENT")
    event = json.loads(text)
    if not isinstance(event, dict):
        raise ValueError("the rotation event is not a JSON object")
    return event


def wait_while_blocked(control_dir, step, parent):
    """Hold the step while block-<Step> exists. False if our parent (pid `parent` at start) died."""
    block_file = os.path.join(control_dir, 'block-' + step)
    if not os.path.exists(block_file):
        return True
    # Write-then-rename so that a test seeing at-<Step> can read the complete pid.
    at_file = os.path.join(control_dir, 'at-' + step)
    tmp_file = "%s.tmp-%d" % (at_file, os.getpid())
    with open(tmp_file, 'w', encoding='ascii') as f:
        f.write(str(os.getpid()))
    os.replace(tmp_file, at_file)
    while os.path.exists(block_file):
        if os.getppid() != parent:
            return False  # re-parented: the kura server that ran us is gone
        time.sleep(POLL_INTERVAL_SECONDS)
    return True


def fail(error):
    """Report an exception as one line on stderr (type and message only) and return status 1."""
    message = ' '.join(str(error).split())
    print("%s: %s" % (type(error).__name__, message), file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
