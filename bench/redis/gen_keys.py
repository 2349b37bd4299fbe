# The bench's mixed key set as RESP commands for `redis-cli --pipe`: 50% strings,
# 10% strings with TTL, 10% hashes, 10% lists, 10% sets, 10% sorted sets.
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
buf = []
for i in range(n):
    k = f"key:{i}"
    m = i % 10
    if m < 5:
        a = ["SET", k, f"value-{i}-" + alnum[: i % 36]]
    elif m == 5:
        a = ["SET", k, f"ttl-{i}", "EX", str(3600 + i % 5000)]
    elif m == 6:
        a = ["HSET", k, "name", f"user{i}", "visits", str(i % 977), "tier", "gold"]
    elif m == 7:
        a = ["RPUSH", k, f"e1-{i}", "e2", "e3", str(i)]
    elif m == 8:
        a = ["SADD", k, f"m{i}", f"m{i + 1}", f"m{i + 2}"]
    else:
        a = ["ZADD", k, str(i % 100), "a", f"{i % 7}.5", "b"]
    buf.append(f"*{len(a)}\r\n" + "".join(f"${len(x)}\r\n{x}\r\n" for x in a))
    if len(buf) == 10000:
        out.write("".join(buf).encode())
        buf.clear()
out.write("".join(buf).encode())
