"""Fills and reads a Redis database for the bit-exact property test (tests/exact.rs),
with redis-py: an independent client, not dbseal's RESP reader.

    python3 exact_redis.py fill URL DB SEED CASES   generated keys of every type
    python3 exact_redis.py dump URL DB [SCRATCH]    one JSON line per key, sorted

The generator aims at every encoding's size thresholds (listpack/hashtable at 128
entries and 64-byte values, intset at 512, embstr at 44 bytes, integer strings at the
edges of a long), binary keys and values, scores across the whole double range, and
expiry times at their edges. `dump` writes each key's type, encoding, absolute expiry
in ms (PEXPIRETIME; with SCRATCH, the encoding a native DUMP/RESTORE into that database
gives it), and value in a canonical form: bytes as hex, scores as the exact
bits (float.hex), unordered collections sorted, streams with their metadata and groups.
"""
import json
import random
import sys

import redis

TYPES = ["string", "list", "set", "zset", "hash", "stream"]


def size(r):
    """A collection size near an encoding threshold, or a small one."""
    return r.choice([0, 1, 2, 3, 63, 64, 65, 127, 128, 129, 511, 512, 513, r.randrange(1, 300)])


def blob(r, n=None):
    if n is None:
        n = r.choice([0, 1, 8, 43, 44, 45, 63, 64, 65, r.randrange(0, 200)])
    kind = r.randrange(4)
    if kind == 0:
        return bytes(r.randrange(256) for _ in range(n))
    if kind == 1:
        return "".join(r.choice("aé日🙂 \r\n\t\\\"'") for _ in range(n)).encode()[:n]
    return bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def member(r):
    """A set/list member: integer-like strings (intset, listpack integers) or blobs."""
    if r.random() < 0.4:
        return r.choice([
            str(r.randrange(-2**63, 2**63)),
            str(r.randrange(-1000, 1000)),
            "-0", "007", "9223372036854775807", "-9223372036854775808",
            "9223372036854775808", "1e3", " 1", "+1",
        ]).encode()
    return blob(r)


def score(r):
    kind = r.randrange(5)
    if kind == 0:
        return r.choice([0.0, -0.0, float("inf"), float("-inf"), 5e-324, 1.7976931348623157e308, 1 / 3])
    if kind == 1:
        import struct
        while True:
            f = struct.unpack("<d", r.randbytes(8))[0]
            if f == f:
                return f
    if kind == 2:
        return r.randrange(-2**53, 2**53) / r.randrange(1, 1000)
    return float(r.randrange(-1000, 1000))


def expiry(r, now_ms):
    kind = r.randrange(6)
    if kind < 3:
        return None
    if kind == 3:
        return now_ms + r.randrange(3_600_000, 10 * 365 * 86_400_000)
    if kind == 4:
        return 253402300799999  # 9999-12-31T23:59:59.999Z
    return now_ms + 86_400_000 + r.randrange(1000)


def fill(url, db, seed, cases):
    r = random.Random(seed)
    c = redis.Redis.from_url(url, db=db)
    version = tuple(int(x) for x in c.info("server")["redis_version"].split(".")[:2])
    now_ms = int(c.time()[0]) * 1000
    p = c.pipeline(transaction=False)
    n = 0
    for t in TYPES:
        for i in range(cases):
            key = b"%s:%d:" % (t.encode(), i) + blob(r, r.randrange(0, 20))
            if t == "string":
                v = member(r) if r.random() < 0.5 else blob(r)
                if r.random() < 0.03:
                    v = blob(r, r.randrange(1000, 200_000))
                p.set(key, v)
            elif t == "list":
                items = [member(r) for _ in range(max(1, size(r)))]
                if r.random() < 0.05:
                    items.append(blob(r, 9000))  # a node beyond list-max-listpack-size
                p.rpush(key, *items)
            elif t == "set":
                items = {member(r) for _ in range(max(1, size(r)))}
                if r.random() < 0.5:
                    items = {str(r.randrange(-2**63, 2**63)).encode() for _ in range(max(1, size(r)))}
                p.sadd(key, *items)
            elif t == "zset":
                p.zadd(key, {member(r): score(r) for _ in range(max(1, size(r)))})
            elif t == "hash":
                fields = {blob(r, r.choice([1, 10, 63, 64, 65])): member(r) for _ in range(max(1, size(r)))}
                p.hset(key, mapping=fields)
                if version >= (7, 4) and r.random() < 0.3:
                    for f in list(fields)[: r.randrange(1, 4)]:
                        p.execute_command("HPEXPIREAT", key, now_ms + r.randrange(3_600_000, 10**9), "FIELDS", 1, f)
            else:
                entries = max(1, size(r) // 4)
                ms = r.randrange(1, 2**40)
                for e in range(entries):
                    fields = {blob(r, r.randrange(1, 10)) or b"f": member(r) for _ in range(r.randrange(1, 4))}
                    p.xadd(key, fields, id=f"{ms + e}-{r.randrange(0, 2**20)}")
                if r.random() < 0.3:
                    p.xdel(key, f"{ms}-0")
                    p.xtrim(key, maxlen=max(0, entries - 2))
                if r.random() < 0.4:
                    p.xgroup_create(key, b"g" + blob(r, 3), id="0")
            at = expiry(r, now_ms)
            if at is not None:
                p.pexpireat(key, at)
            n += 1
            if n % 200 == 0:
                p.execute()
    p.execute()
    # Stream groups with pending entries: read some as a consumer.
    for key in c.scan_iter(match=b"stream:*", count=1000):
        for g in c.xinfo_groups(key):
            c.xreadgroup(g["name"], b"consumer", {key: ">"}, count=r.randrange(1, 4))


def hx(b):
    return b.hex() if isinstance(b, (bytes, bytearray)) else b


def canonical(c, key, t):
    if t == b"string":
        return c.get(key).hex()
    if t == b"list":
        return [hx(x) for x in c.lrange(key, 0, -1)]
    if t == b"set":
        return sorted(hx(x) for x in c.smembers(key))
    if t == b"zset":
        return [[hx(m), float(s).hex()] for m, s in c.zrange(key, 0, -1, withscores=True)]
    if t == b"hash":
        items = sorted((hx(f), hx(v)) for f, v in c.hgetall(key).items())
        try:
            ttls = c.execute_command("HPEXPIRETIME", key, "FIELDS", len(items), *[bytes.fromhex(f) for f, _ in items]) if items else []
        except redis.ResponseError:
            ttls = []
        return [items, ttls]
    if t == b"stream":
        info = c.execute_command("XINFO", "STREAM", key)
        if isinstance(info, list):
            info = dict(zip(info[::2], info[1::2]))
        meta = {k.decode(): hx(info[k]) for k in info if k in (b"length", b"last-generated-id", b"max-deleted-entry-id", b"entries-added", b"recorded-first-entry-id")}
        # An entry's fields keep their order.
        entries = [[hx(i), [[hx(f), hx(v)] for f, v in fields.items()]] for i, fields in c.xrange(key)]
        groups = []
        for g in c.xinfo_groups(key):
            pending = c.xpending_range(key, g["name"], min="-", max="+", count=100000)
            groups.append([hx(g["name"]), hx(g["last-delivered-id"]), g.get("entries-read"),
                           sorted([hx(p["message_id"]), hx(p["consumer"]), p["times_delivered"]] for p in pending)])
        return [meta, entries, sorted(groups)]
    raise SystemExit(f"unexpected type {t!r} of key {key!r}")


def encoding(c, key, s):
    """The key's encoding; with a scratch database, the encoding Redis's own DUMP and
    RESTORE (same name, same expiry) give it: a listpack list near its size limit
    comes back a quicklist, and on Redis 8 whether a string is embstr depends on the
    key's name and expiry, embedded in the same allocation."""
    if s is None:
        return c.object("encoding", key).decode()
    at = c.execute_command("PEXPIRETIME", key)
    s.restore(key, max(at, 0), c.dump(key), replace=True, absttl=True)
    e = s.object("encoding", key).decode()
    s.delete(key)
    return e


def dump(url, db, scratch=None):
    c = redis.Redis.from_url(url, db=db)
    s = None if scratch is None else redis.Redis.from_url(url, db=scratch)
    for key in sorted(c.scan_iter(count=1000)):
        t = c.type(key)
        line = {
            "key": key.hex(),
            "type": t.decode(),
            "encoding": encoding(c, key, s),
            "expire_at_ms": c.execute_command("PEXPIRETIME", key),
            "value": canonical(c, key, t),
        }
        print(json.dumps(line, sort_keys=True))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "fill":
        fill(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "dump":
        dump(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else None)
    else:
        raise SystemExit(__doc__)
