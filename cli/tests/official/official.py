"""The official Python verifier and signer (PyPI standardwebhooks), driven by cli/tests/interop.rs.

Usage: python3 official.py INTEROP_DIR < request.json
request: {"verify": [{secret, id, timestamp, signature, body}], "sign": [{secret, id, timestamp, body}]}
answer:  {"verified": [{"standardwebhooks": bool}], "signed": ["v1,..."]}
A verifier that raises for a reason other than a bad signature answers "error: <message>".
"""

import json
import os
import sys
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(sys.argv[1], "py"))

from standardwebhooks import Webhook, WebhookVerificationError  # noqa: E402


def verify(case):
    headers = {
        "webhook-id": case["id"],
        "webhook-timestamp": case["timestamp"],
        "webhook-signature": case["signature"],
    }
    try:
        Webhook(case["secret"]).verify(case["body"].encode(), headers, json_parse=False)
        return True
    except WebhookVerificationError as e:
        if str(e) == "No matching signature found":
            return False
        return f"error: {e}"
    except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
        return f"error: {type(e).__name__}: {e}"


def sign(case):
    at = datetime.fromtimestamp(case["timestamp"], tz=timezone.utc)
    return Webhook(case["secret"]).sign(case["id"], at, case["body"])


def main():
    request = json.load(sys.stdin)
    answer = {
        "verified": [{"standardwebhooks": verify(c)} for c in request.get("verify", [])],
        "signed": [sign(c) for c in request.get("sign", [])],
    }
    sys.stdout.write(json.dumps(answer))


main()
