#!/usr/bin/env python3
"""What one commit of N session starts writes to SQLite's write-ahead log, by B-tree.

Applies Tessera's migrations to a scratch database (with the `tessera` binary given), fills it
with 40,000 integration sessions as the store writes them (a session row and its first refresh
token per start, N starts to a transaction), then counts the log frames (pages) ten more
commits write and which table or index each page belongs to. Page counts, not timings: the
same on a busy machine as on a quiet one.

Usage: python3 scripts/wal-pages.py target/release/tessera [N] [--earlier]
  --earlier: the key shapes before issue 16 (random UUIDv4 sids, SHA-256 refresh-token keys);
  run it with the binary of that release to get its full indexes too.
"""
import hashlib, os, sqlite3, struct, subprocess, sys, tempfile, time, uuid, collections

binary = sys.argv[1]
batch = int(sys.argv[2]) if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else 18
earlier = "--earlier" in sys.argv
work = tempfile.mkdtemp()
path = f"{work}/t.db"
env = dict(os.environ, TESSERA_DATABASE_URL=f"sqlite://{path}?mode=rwc", RUST_LOG="error")
subprocess.run([binary, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL)
db = sqlite3.connect(path, isolation_level=None)
db.execute("pragma journal_mode=wal")
db.execute("pragma synchronous=normal")
db.execute("pragma wal_autocheckpoint=0")
client = str(uuid.uuid4())
# Foreign keys are off (sqlite3's default): the client row need not exist.
now = int(time.time() * 1000)

def uuid7() -> uuid.UUID:
    r = os.urandom(10)
    return uuid.UUID(bytes=int(time.time() * 1000).to_bytes(6, "big") + bytes([0x70 | (r[0] & 15), r[1],
                     0x80 | (r[2] & 63)]) + r[3:10])

def commit():
    sessions, tokens = [], []
    for _ in range(batch):
        sid = str(uuid.uuid4()) if earlier else str(uuid7())
        key = (hashlib.sha256(os.urandom(32)).hexdigest() if earlier
               else uuid7().hex + hashlib.sha256(os.urandom(48)).hexdigest()[:32])
        sessions += [sid, client, "integ", now, now + 86_400_000]
        tokens += [key, sid, client, now, now + 86_400_000]
    db.execute("begin")
    db.execute("insert into sessions (sid, client_id, scope, created_at, expires_at) values "
               + ",".join(["(?,?,?,?,?)"] * batch), sessions)
    db.execute("insert into refresh_tokens (token_hash, sid, client_id, created_at, expires_at) values "
               + ",".join(["(?,?,?,?,?)"] * batch), tokens)
    db.execute("commit")

for _ in range(40_000 // batch):
    commit()
db.execute("pragma wal_checkpoint(TRUNCATE)").fetchall()
for _ in range(10):
    commit()
owner = {pageno: name for name, pageno in db.execute("select name, pageno from dbstat")}
wal = open(f"{path}-wal", "rb").read()
page_size = struct.unpack(">I", wal[8:12])[0]
frames, offset = [], 32
while offset + 24 + page_size <= len(wal):
    frames.append(struct.unpack(">I", wal[offset:offset + 4])[0])
    offset += 24 + page_size
print(f"{'earlier key shapes' if earlier else 'time-ordered keys'}: {len(frames) / 10:.1f} pages per "
      f"commit of {batch} session starts ({len(frames) / 10 / batch:.2f} per session)")
for name, count in collections.Counter(owner.get(p, "?") for p in frames).most_common():
    print(f"  {name:36} {count / 10:5.1f}")
