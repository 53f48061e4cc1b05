#!/usr/bin/env python3
"""Answers, for each line of base64 on stdin, what CPython's json makes of that body.

Used by TestAgainstCPython as one long-lived process. Each answer is one line:
"1 <base64 of json.dumps(json.loads(body))>" when json.loads accepts the body,
"0 <exception class>" when it refuses it.
"""
import base64
import json
import sys


def main():
    out = sys.stdout
    for line in sys.stdin:
        body = base64.b64decode(line.strip())
        try:
            text = json.dumps(json.loads(body))
        except (ValueError, RecursionError) as e:
            out.write("0 %s\n" % type(e).__name__)
        else:
            out.write("1 %s\n" % base64.b64encode(text.encode('ascii')).decode('ascii'))
        out.flush()


if __name__ == '__main__':
    main()
