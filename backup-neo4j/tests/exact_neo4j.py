"""Generates and reads the values of the Neo4j bit-exact round-trip test (exact.rs).

    exact_neo4j.py fill DATABASE SEED CASES   # CASES nodes (:Case {t, i, v}) per type
    exact_neo4j.py dump DATABASE              # one canonical JSON line per node
    exact_neo4j.py bump DATABASE              # moves one float one ULP (the test's change)

The server is DBSEAL_TEST_BOLT_URL, user DBSEAL_TEST_BOLT_USER, password
DBSEAL_TEST_BOLT_PASSWORD (read from the environment, never from argv). Values are
written and read with the official Neo4j Python driver, an independent client: dbseal's
own Bolt code is not involved in what the test compares. The canonical form keeps
every bit: floats as IEEE-754 hex (every NaN is "nan": NaN equals NaN), integers as
decimal text, temporal values as ISO text with their offset and zone name, points as
SRID and coordinate bits.
"""

import json
import math
import os
import random
import struct
import sys

import neo4j
import neo4j.spatial
import neo4j.time
import pytz

ZONES = [
    "Europe/Paris",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/St_Johns",
    "UTC",
]


def driver():
    return neo4j.GraphDatabase.driver(
        os.environ["DBSEAL_TEST_BOLT_URL"],
        auth=(os.environ["DBSEAL_TEST_BOLT_USER"], os.environ["DBSEAL_TEST_BOLT_PASSWORD"]),
    )


def f64(r):
    """Floats across the whole range: raw bit patterns, quotients, edges."""
    k = r.randrange(6)
    if k == 0:
        return struct.unpack(">d", r.getrandbits(64).to_bytes(8, "big"))[0]
    if k == 1:
        return r.randrange(1, 100000) / r.choice([3, 7, 11, 13, 10, 1000])
    if k == 2:
        return r.choice(
            [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
             -1.7976931348623157e308, math.inf, -math.inf, math.nan, 0.1 + 0.2, 2.0**53 + 2]
        )
    if k == 3:  # subnormals
        return struct.unpack(">d", r.getrandbits(52).to_bytes(8, "big"))[0] * r.choice([1, -1])
    if k == 4:
        return r.uniform(-1e6, 1e6)
    return math.ldexp(r.random(), r.randrange(-1074, 1024))


def i64(r):
    k = r.randrange(3)
    if k == 0:
        return r.choice([-(2**63), 2**63 - 1, 0, -1, 1, 2**31, -(2**31) - 1, 2**53 + 1])
    if k == 1:
        return r.getrandbits(64) - 2**63
    return r.randrange(-1000, 1000)


def text(r):
    chars = []
    for _ in range(r.randrange(0, 40)):
        k = r.randrange(4)
        if k == 0:
            chars.append(chr(r.randrange(0x20, 0x7F)))
        elif k == 1:
            chars.append(r.choice(["\u0000", "\t", "\n", " ", "\\", '"', "'", "\u00e9", "\u200b"]))
        elif k == 2:
            c = r.randrange(0x80, 0x10000)
            chars.append(chr(c) if not 0xD800 <= c < 0xE000 else "x")
        else:
            chars.append(chr(r.randrange(0x10000, 0x110000)))
    return "".join(chars) + r.choice(["", " ", "  "])


def date(r):
    return neo4j.time.Date.from_ordinal(r.randrange(1, 3652059 + 1))


def clock(r):
    ns = r.randrange(0, 86400 * 10**9)
    if r.randrange(4) == 0:
        ns = r.choice([0, 86400 * 10**9 - 1])
    return neo4j.time.Time.from_ticks(ns)


def offset(r):
    return pytz.FixedOffset(r.randrange(-18 * 60, 18 * 60 + 1))


# ArcadeDB work-around: ArcadeDB holds a (local) datetime as nanoseconds since 1970 in a
# 64-bit integer, so it refuses one outside 1677-09-21 .. 2262-04-11 ("outside the range
# a nanos-precision timestamp can represent"); Neo4j takes years -999,999,999 to
# 999,999,999. Datetimes are drawn from 1678-01-01 .. 2261-12-31 (dates from the whole
# range 1..9999).
DT_FIRST = neo4j.time.Date(1678, 1, 1).to_ordinal()
DT_LAST = neo4j.time.Date(2261, 12, 31).to_ordinal()


def local_dt(r):
    d = neo4j.time.Date.from_ordinal(r.randrange(DT_FIRST, DT_LAST + 1))
    return neo4j.time.DateTime.combine(d, clock(r))


def zoned_dt(r):
    # Named zones, daylight-saving gaps and overlaps included (the server resolves a
    # time in a gap when it is written; both sides of the comparison read that).
    return pytz.timezone(r.choice(ZONES)).localize(local_dt(r))


def duration(r):
    return neo4j.time.Duration(
        months=r.randrange(-1200, 1200),
        days=r.randrange(-40000, 40000),
        seconds=r.randrange(-(10**9), 10**9),
        nanoseconds=r.randrange(0, 10**9),
    )


TYPES = {
    "float": f64,
    "integer": i64,
    "string": text,
    "boolean": lambda r: r.random() < 0.5,
    "bytes": lambda r: bytearray(r.getrandbits(8) for _ in range(r.randrange(1, 64))),
    "float_list": lambda r: [f64(r) for _ in range(r.randrange(1, 8))],
    "integer_list": lambda r: [i64(r) for _ in range(r.randrange(1, 8))],
    "string_list": lambda r: [text(r) for _ in range(r.randrange(1, 6))],
    "boolean_list": lambda r: [r.random() < 0.5 for _ in range(r.randrange(1, 6))],
    "date": date,
    "localtime": clock,
    "time": lambda r: clock(r).replace(tzinfo=offset(r)),
    "localdatetime": local_dt,
    # ArcadeDB work-around: ArcadeDB stores a DateTime with a fixed offset, sent as a
    # parameter, as a UTC localdatetime already when the test writes it, so on ArcadeDB
    # both sides read a localdatetime; on Neo4j the offset is kept and compared.
    "datetime_offset": lambda r: local_dt(r).replace(tzinfo=offset(r)),
    "datetime_zone": zoned_dt,
    "date_list": lambda r: [date(r) for _ in range(r.randrange(1, 5))],
    "duration": duration,
    "point_cartesian": lambda r: neo4j.spatial.CartesianPoint((f64(r), f64(r))),
    "point_cartesian_3d": lambda r: neo4j.spatial.CartesianPoint((f64(r), f64(r), f64(r))),
    "point_wgs84": lambda r: neo4j.spatial.WGS84Point((r.uniform(-180, 180), r.uniform(-90, 90))),
    "point_wgs84_3d": lambda r: neo4j.spatial.WGS84Point(
        (r.uniform(-180, 180), r.uniform(-90, 90), r.uniform(-1e4, 1e4))
    ),
}


def bits(f):
    return "nan" if math.isnan(f) else struct.pack(">d", f).hex()


def zone_of(tz):
    return getattr(tz, "key", None) or getattr(tz, "zone", None)


def canon(v):
    if isinstance(v, bool):
        return ["boolean", v]
    if isinstance(v, int):
        return ["integer", str(v)]
    if isinstance(v, float):
        return ["float", bits(v)]
    if isinstance(v, str):
        return ["string", v]
    if isinstance(v, (bytes, bytearray)):
        return ["bytes", bytes(v).hex()]
    if isinstance(v, list):
        return ["list", [canon(x) for x in v]]
    if isinstance(v, neo4j.time.DateTime):
        tz = v.tzinfo
        return ["datetime", v.iso_format(), zone_of(tz), str(v.utcoffset()) if tz else None]
    if isinstance(v, neo4j.time.Date):
        return ["date", v.iso_format()]
    if isinstance(v, neo4j.time.Time):
        tz = v.tzinfo
        return ["time", v.iso_format(), str(v.utc_offset()) if tz else None]
    if isinstance(v, neo4j.time.Duration):
        return ["duration", v.months, v.days, v.seconds, v.nanoseconds]
    if isinstance(v, neo4j.spatial.Point):
        return ["point", v.srid, [bits(c) for c in v]]
    raise SystemExit(f"unexpected value type {type(v).__name__}: {v!r}")


def fill(database, seed, cases):
    r = random.Random(seed)
    with driver() as d, d.session(database=database) as s:
        for t, gen in TYPES.items():
            rows = [{"t": t, "i": i, "v": gen(r)} for i in range(cases)]
            for start in range(0, len(rows), 500):
                s.run(
                    "UNWIND $rows AS r CREATE (:Case {t: r.t, i: r.i, v: r.v})",
                    rows=rows[start : start + 500],
                ).consume()


def dump(database):
    with driver() as d, d.session(database=database) as s:
        for rec in s.run("MATCH (n:Case) RETURN n.t AS t, n.i AS i, n.v AS v"):
            print(json.dumps({"t": rec["t"], "i": rec["i"], "v": canon(rec["v"])}))


def bump(database):
    with driver() as d, d.session(database=database) as s:
        for rec in s.run("MATCH (n:Case {t: 'float'}) RETURN n.i AS i, n.v AS v"):
            v = rec["v"]
            if math.isfinite(v) and v != 0.0:
                u = struct.unpack(">d", (struct.unpack(">Q", struct.pack(">d", v))[0] ^ 1).to_bytes(8, "big"))[0]
                s.run("MATCH (n:Case {t: 'float', i: $i}) SET n.v = $v", i=rec["i"], v=u).consume()
                print(json.dumps({"i": rec["i"], "from": bits(v), "to": bits(u)}))
                return
    raise SystemExit("no finite non-zero float to change")


if __name__ == "__main__":
    cmd, database = sys.argv[1], sys.argv[2]
    if cmd == "fill":
        fill(database, int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "dump":
        dump(database)
    elif cmd == "bump":
        bump(database)
    else:
        raise SystemExit(f"unknown command {cmd}")
