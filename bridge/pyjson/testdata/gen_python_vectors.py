#!/usr/bin/env python3
"""Writes python_vectors.json: bodies with what CPython's json module makes of them.

Run from this directory with the CPython that the Python SDK runs on (3.11):
    python3 gen_python_vectors.py
Each case: name, body (base64: bodies may hold invalid UTF-8), ok (json.loads
accepted it), dumps (base64 of json.dumps(json.loads(body)) when ok), error
(exception class when not ok) and go_error: "depth" or "encoding" when
json.loads accepts a body that pyjson refuses on purpose (nesting deeper than
512, UTF-16/32), else "". The random part uses a fixed seed, so the output
only changes when this script or CPython changes.
"""
import base64
import json
import random
import sys

assert sys.version_info[:2] == (3, 11), "the vectors describe CPython 3.11"

HAND = [
    # Senfenico-shaped envelopes
    ("envelope data string", b'{"event": "charge.success", "data": "{\\"reference\\": \\"9531985d\\", \\"amount\\": 2000, \\"fees\\": 30.5}"}'),
    ("envelope data object pretty", b'{\n    "event": "checkout.success",\n    "data": {\n        "amount": 1000,\n        "live_mode": false\n    }\n}\n'),
    ("envelope compact", b'{"event":"transfer.pending","data":{"fees":0.1,"amount":-0}}'),
    # top level
    ("bare string", b'"hello"'), ("bare int", b'42'), ("bare float", b'4.2'), ("bare null", b'null'),
    ("bare true", b'true'), ("bare false", b'false'), ("surrounding whitespace", b' \t\r\n 1 \n\r\t '),
    ("empty body", b''), ("only whitespace", b' \n'), ("extra data", b'1 2'), ("two objects", b'{}{}'),
    ("trailing comma array", b'[1,]'), ("trailing comma object", b'{"a":1,}'), ("leading comma", b'[,1]'),
    ("missing colon", b'{"a" 1}'), ("missing comma", b'[1 2]'), ("unquoted key", b'{a:1}'),
    ("single quotes", b"{'a':1}"), ("unclosed array", b'[1'), ("unclosed object", b'{"a":1'),
    ("unclosed string", b'"abc'), ("lone close", b']'), ("empty containers", b'[{}, [], {"a": []}]'),
    ("nested empty", b'[[[]], {"x": {}}]'),
    # whitespace
    ("form feed ws", b'\x0c1'), ("vertical tab ws", b'\x0b1'), ("nbsp ws", b'\xc2\xa01'),
    ("nul after value", b'1\x00 '), ("ws inside", b'{ "a" : [ 1 , 2 ] }'),
    # BOM and encodings
    ("utf-8 bom", b'\xef\xbb\xbf{"a": 1}'), ("utf-8 bom twice", b'\xef\xbb\xbf\xef\xbb\xbf1'),
    ("utf-8 bom then ws", b'\xef\xbb\xbf  "x"'), ("bom inside", b'[\xef\xbb\xbf1]'),
    ("utf-16-le two bytes", b'1\x00'), ("utf-16-be two bytes", b'\x001'),
    ("utf-16-le", '{"a": 1}'.encode('utf-16-le')), ("utf-16 bom", '[1]'.encode('utf-16')),
    ("utf-32-le", '[2]'.encode('utf-32-le')), ("utf-32 bom", '[3]'.encode('utf-32')),
    # literals
    ("NaN", b'NaN'), ("Infinity", b'Infinity'), ("-Infinity", b'-Infinity'), ("-NaN", b'-NaN'),
    ("+1", b'+1'), ("nan lower", b'nan'), ("inf lower", b'inf'), ("Infinity suffix", b'Infinityx'),
    ("null suffix", b'nulls'), ("true prefix", b'tru'), ("TRUE", b'TRUE'), ("literals in array", b'[NaN, Infinity, -Infinity, true, false, null]'),
    # numbers
    ("minus zero", b'-0'), ("minus zero float", b'-0.0'), ("zero float", b'0.0'), ("leading zero", b'01'),
    ("minus leading zero", b'-01'), ("dot no digit", b'1.'), ("dot first", b'.5'), ("e no digit", b'1e'),
    ("e sign no digit", b'1e+'), ("upper E", b'1E5'), ("e plus", b'1e+2'), ("e minus", b'1e-2'),
    ("exp 16", b'1e16'), ("exp 15", b'1e15'), ("exp -4", b'0.0001'), ("exp -5", b'0.00001'),
    ("17 digits", b'1.2345678901234567e17'), ("fixed 16 digits", b'1234567890123456.0'),
    ("huge float", b'1e400'), ("minus huge float", b'-1e400'), ("tiny float", b'1e-400'),
    ("minus tiny", b'-1e-400'), ("max float", b'1.7976931348623157e308'), ("denormal", b'5e-324'),
    ("rounding", b'0.1'), ("rounding2", b'0.30000000000000004'), ("float exp 0", b'1.5e0'),
    ("long mantissa", b'3.14159265358979323846264338327950288419716939937510'),
    ("big int", b'123456789012345678901234567890'), ("int 4300 digits", b'9' * 4300),
    ("int 4301 digits", b'9' * 4301), ("neg int 4300 digits", b'-' + b'9' * 4300),
    ("neg int 4301 digits", b'-' + b'9' * 4301), ("float 5000 digits", b'1' * 5000 + b'.5'),
    ("exp many digits", b'1e00000000000000000000000000000001'), ("minus alone", b'-'),
    ("minus space", b'- 1'), ("hex", b'0x10'), ("underscore", b'1_000'), ("fullwidth digit", '１'.encode()),
    ("fees", b'30.5'), ("amount as float", b'2000.0'), ("e after frac", b'2.5E-3'),
    ("1e22", b'1e22'), ("1e23", b'1e23'), ("9007199254740993", b'9007199254740993.0'),
    ("2^63", b'9223372036854775808'), ("-2^63-1", b'-9223372036854775809'),
    ("huge exponent", b'1e99999999999999999999'), ("huge negative exponent", b'-1e-99999999999999999999'),
    ("zero huge exponent", b'0e99999999999'), ("many frac zeros", b'0.' + b'0' * 500 + b'1e400'),
    ("many int zeros", b'1' + b'0' * 400 + b'e-400'), ("long int with exp", b'123456789012345678901234567890e-10'),
    ("half min subnormal up", b'2.4703282292062328e-324'), ("half min subnormal down", b'2.4703282292062327e-324'),
    ("max float rounding", b'1.7976931348623158e308'), ("max float overflow", b'1.7976931348623159e308'),
    # strings
    ("all simple escapes", b'"\\" \\\\ \\/ \\b \\f \\n \\r \\t"'), ("bad escape", b'"\\a"'),
    ("escape x", b'"\\x41"'), ("escape u short", b'"\\u12"'), ("escape u bad hex", b'"\\u12g4"'),
    ("escape u upper", b'"\\u00E9\\u00e9"'), ("escape u ascii", b'"\\u0041\\u0022\\u005c\\u002f"'),
    ("escape u controls", b'"\\u0000\\u0008\\u000c\\u000a\\u000d\\u0009\\u001f\\u007f"'),
    ("raw tab", b'"a\tb"'), ("raw newline", b'"a\nb"'), ("raw nul", b'"a\x00b"'), ("raw 0x1f", b'"\x1f"'),
    ("raw DEL", b'"\x7f"'), ("raw latin", '"é"'.encode()), ("raw cjk", '"日本"'.encode()),
    ("raw astral", '"😀"'.encode()), ("escaped pair", b'"\\ud83d\\ude00"'), ("escaped pair upper", b'"\\uD83D\\uDE00"'),
    ("lone high escape", b'"\\ud800"'), ("lone low escape", b'"\\udc00"'), ("reversed pair", b'"\\udc00\\ud800"'),
    ("high high low", b'"\\ud800\\ud800\\udc00"'), ("high then text", b'"\\ud800x"'),
    ("high then simple escape", b'"\\ud800\\n"'), ("high then bad u", b'"\\ud800\\u12"'),
    ("high then bad hex", b'"\\ud800\\uzzzz"'), ("high at end", b'"\\ud800'),
    ("raw high surrogate", b'"\xed\xa0\x80"'), ("raw low surrogate", b'"\xed\xb0\x80"'),
    ("raw pair cesu", b'"\xed\xa0\x80\xed\xb0\x80"'), ("escaped high raw low", b'"\\ud800\xed\xb0\x80"'),
    ("raw high escaped low", b'"\xed\xa0\x80\\udc00"'), ("raw surrogate key", b'{"\xed\xa0\x80": 1}'),
    ("overlong slash", b'"\xc0\xaf"'), ("overlong nul", b'"\xc0\x80"'), ("overlong 3", b'"\xe0\x80\xaf"'),
    ("above max", b'"\xf4\x90\x80\x80"'), ("f5", b'"\xf5\x80\x80\x80"'), ("lone continuation", b'"\x80"'),
    ("truncated 2", b'"\xc3"'), ("truncated 3", b'"\xe6\x97"'), ("truncated 4", b'"\xf0\x9f\x98"'),
    ("ff byte", b'"\xff"'), ("max code point", b'"\xf4\x8f\xbf\xbf"'), ("U+FFFF", b'"\xef\xbf\xbf"'),
    ("U+FEFF in string", b'"\xef\xbb\xbf"'), ("invalid utf8 outside", b'[1]\xff'),
    ("invalid utf8 after error", b'[1,]\xff'), ("empty string", b'""'), ("empty key", b'{"": ""}'),
    ("slash", b'"a/b"'), ("quote key", b'{"\\"": "\\\\"}'), ("unicode key", '{"clé": "valeur"}'.encode()),
    ("escape at end", b'"\\'), ("escape u at end", b'"\\u0041'),
    # duplicate keys
    ("dup keys", b'{"a": 1, "b": 2, "a": 3}'), ("dup keys thrice", b'{"a": 1, "a": 2, "b": 3, "a": 4}'),
    ("dup escaped", b'{"a": 1, "\\u0061": 2}'), ("dup pair vs raw", b'{"\\ud83d\\ude00": 1, "\xf0\x9f\x98\x80": 2}'),
    ("dup pair vs cesu", b'{"\\ud83d\\ude00": 1, "\xed\xa0\xbd\xed\xb8\x80": 2}'),
    ("dup cesu vs half", b'{"\xed\xa0\xbd\xed\xb8\x80": 1, "\\ud83d\xed\xb8\x80": 2}'),
    ("dup nested", b'{"a": {"x": 1, "x": 2}, "a": [1]}'), ("dup object values", b'{"a": {"b": 1}, "a": {"c": 2}}'),
    ("dup many", b'{' + b', '.join(b'"k%d": %d' % (i % 7, i) for i in range(40)) + b'}'),
    ("no dup many", b'{' + b', '.join(b'"k%d": %d' % (i, i) for i in range(40)) + b'}'),
    ("dup empty key", b'{"": 1, "": 2}'),
    # depth
    ("depth 512 arrays", b'[' * 512 + b']' * 512), ("depth 513 arrays", b'[' * 513 + b']' * 513),
    ("depth 512 objects", b'{"a":' * 511 + b'{}' + b'}' * 511),
    ("depth 513 objects", b'{"a":' * 512 + b'{}' + b'}' * 512),
    ("depth 2000 arrays", b'[' * 2000 + b']' * 2000), ("depth unclosed", b'[' * 600),
]


def b64(b):
    return base64.b64encode(b).decode('ascii')


def max_depth(o):
    # Iterative: the documents may nest deeper than Python's recursion limit allows to walk.
    deepest, stack = 0, [(o, 0)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (list, dict)):
            d += 1
            deepest = max(deepest, d)
            stack.extend((x, d) for x in (o.values() if isinstance(o, dict) else o))
    return deepest


def run(name, body):
    case = {"name": name, "body": b64(body), "ok": False, "dumps": "", "error": "", "go_error": ""}
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as e:
        case["error"] = type(e).__name__
        return case
    case["ok"] = True
    case["dumps"] = b64(json.dumps(obj).encode('ascii'))
    if json.detect_encoding(body) not in ('utf-8', 'utf-8-sig'):
        case["go_error"] = "encoding"
    elif max_depth(obj) > 512:
        case["go_error"] = "depth"
    return case


class Gen:
    """Random JSON-ish text: every rule above, in random combinations."""

    def __init__(self, rnd):
        self.r = rnd

    def ws(self):
        r = self.r
        if r.random() < 0.6:
            return ''
        return ''.join(r.choice(' \t\n\r') for _ in range(r.randint(1, 3)))

    def number(self):
        r = self.r
        s = r.choice(['', '', '-'])
        s += r.choice(['0', str(r.randint(1, 9)), str(r.randint(1, 10**6)), str(r.randint(1, 10**30)),
                       str(r.randint(1, 9)) + ''.join(r.choice('0123456789') for _ in range(r.randint(15, 25)))])
        if r.random() < 0.5:
            s += '.' + ''.join(r.choice('0123456789') for _ in range(r.randint(1, 20)))
        if r.random() < 0.4:
            s += r.choice('eE') + r.choice(['', '+', '-']) + str(r.choice([0, 1, 4, 5, 15, 16, 17, 22, 100, 307, 308, 309, 320, 324, 330, 400, r.randint(0, 40)]))
        return s

    def char(self):
        r = self.r
        k = r.random()
        if k < 0.5:
            return r.choice('abcxyz ABC019/:-_.,{}[]')
        if k < 0.6:
            return r.choice(['\\"', '\\\\', '\\/', '\\b', '\\f', '\\n', '\\r', '\\t'])
        if k < 0.7:
            cp = r.choice([r.randint(0, 0x7f), r.randint(0x80, 0xffff), 0xd800, 0xdbff, 0xdc00, 0xdfff,
                           r.randint(0xd800, 0xdfff)])
            h = '%04x' % cp
            return '\\u' + (h.upper() if r.random() < 0.3 else h)
        if k < 0.75:
            hi, lo = r.randint(0xd800, 0xdbff), r.randint(0xdc00, 0xdfff)
            return '\\u%04x\\u%04X' % (hi, lo)
        if k < 0.9:
            return chr(r.choice([0x7f, 0xe9, 0x20ac, 0x65e5, 0xfeff, 0xffff, 0x1f600, 0x10ffff, r.randint(0xa0, 0xd7ff)]))
        if k < 0.95:
            return chr(r.randint(0xd800, 0xdfff))  # raw surrogate, encoded with surrogatepass
        return chr(r.randint(0x10000, 0x10ffff))

    def string(self, pool=None):
        r = self.r
        if pool is not None and r.random() < 0.6:
            return r.choice(pool)
        return '"' + ''.join(self.char() for _ in range(r.randint(0, 8))) + '"'

    def value(self, depth):
        r = self.r
        k = r.random()
        if depth > 3 or k < 0.45:
            k2 = r.random()
            if k2 < 0.35:
                return self.number()
            if k2 < 0.75:
                return self.string()
            return r.choice(['null', 'true', 'false', 'NaN', 'Infinity', '-Infinity'])
        if k < 0.7:
            items = [self.value(depth + 1) for _ in range(r.randint(0, 5))]
            return '[' + self.ws() + (self.ws() + ',' + self.ws()).join(items) + self.ws() + ']'
        pool = ['"a"', '"\\u0061"', '"b"', '"\\ud83d\\ude00"', '"\U0001f600"', '"\ud83d\ude00"', '"k"', '""']
        n = r.randint(0, 20) if r.random() < 0.1 else r.randint(0, 5)
        members = [self.string(pool) + self.ws() + ':' + self.ws() + self.value(depth + 1) for _ in range(n)]
        return '{' + self.ws() + (self.ws() + ',' + self.ws()).join(members) + self.ws() + '}'

    def body(self):
        return (self.ws() + self.value(0) + self.ws()).encode('utf-8', 'surrogatepass')

    def mutate(self, b):
        r = self.r
        b = bytearray(b)
        for _ in range(r.randint(1, 3)):
            op = r.random()
            pos = r.randint(0, len(b))
            byte = r.choice(b'"\\/{}[],:.eE+-0159 \t\n\r\x00\x0c\x1f\x7f\x80\xa0\xc0\xc3\xed\xf0\xf4\xffuNI')
            if op < 0.4:
                b.insert(pos, byte)
            elif op < 0.7 and b:
                del b[min(pos, len(b) - 1)]
            elif op < 0.9 and b:
                b[min(pos, len(b) - 1)] = byte
            else:
                b = b[:pos]
        return bytes(b)


def main():
    cases = [run(name, body) for name, body in HAND]
    g = Gen(random.Random(20240601))
    for i in range(500):
        body = g.body()
        if i % 3 == 2:
            cases.append(run("random mutated %d" % i, g.mutate(body)))
        else:
            cases.append(run("random %d" % i, body))
    with open('python_vectors.json', 'w') as f:
        json.dump({"python": sys.version.split()[0], "cases": cases}, f, indent=1)
        f.write('\n')
    print("%d cases, %d accepted" % (len(cases), sum(c["ok"] for c in cases)))


if __name__ == '__main__':
    main()
