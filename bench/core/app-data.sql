-- A "real-looking" application database for bench/core: customers, orders with JSON
-- order lines, and an event log with free-text messages, UUIDs and JSON attributes.
-- Deterministic (setseed). Scale with the psql variable `rows` (events; orders are a
-- quarter of it, customers a twentieth): rows=6000000 gives a plain pg_dump of about
-- 2 GiB that compresses about 4-5:1 with zstd -3, unlike pgbench's blank-padded filler
-- (over 100:1).
--   psql -v rows=6000000 -f bench/core/app-data.sql
\set ON_ERROR_STOP on
SELECT setseed(0.42);

CREATE FUNCTION pg_temp.pick(a text[]) RETURNS text LANGUAGE sql VOLATILE AS
$$ SELECT a[1 + floor(random() * array_length(a, 1))::int] $$;

CREATE FUNCTION pg_temp.words(n int) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT string_agg(pg_temp.pick(ARRAY[
    'the','a','request','user','session','timeout','retry','cache','miss','hit','payment',
    'order','invoice','shipment','warehouse','delayed','failed','succeeded','accepted',
    'rejected','queued','processing','completed','cancelled','refund','customer','account',
    'password','reset','email','sent','bounced','opened','clicked','login','logout',
    'token','expired','renewed','upstream','downstream','service','returned','status',
    'code','latency','exceeded','threshold','for','with','from','to','after','before',
    'while','during','connection','pool','exhausted','database','query','slow','index',
    'scan','lock','wait','deadlock','detected','transaction','rolled','back','committed',
    'batch','job','scheduled','started','finished','worker','node','cluster','region',
    'eu-west-1','us-east-1','disk','usage','high','low','memory','cpu','throttled','rate',
    'limit','quota','api','key','rotated','webhook','delivered','signature','invalid',
    'item','stock','reserved','released','price','updated','discount','applied','coupon',
    'cart','abandoned','checkout','address','validated','carrier','label','printed',
    'tracking','number','assigned','feature','flag','enabled','disabled','experiment',
    'variant','config','reloaded','deploy','version','rollback','health','check','passed'
  ]), ' ') FROM generate_series(1, n) $$;

CREATE TABLE customers (
  id bigint PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  city text NOT NULL,
  country char(2) NOT NULL,
  signed_up timestamptz NOT NULL,
  plan text NOT NULL,
  balance numeric(12, 2) NOT NULL
);
INSERT INTO customers
SELECT g,
       first || ' ' || last,
       lower(first) || '.' || lower(last) || g || '@' ||
         pg_temp.pick(ARRAY['example.com','mail.test','corp.example','shop.test']),
       pg_temp.pick(ARRAY['Berlin','Paris','Lyon','Madrid','Lisbon','Dublin','Vienna','Prague',
         'Warsaw','Oslo','Austin','Denver','Toronto','Osaka','Seoul','Sydney','Lagos','Lima']),
       pg_temp.pick(ARRAY['DE','FR','ES','PT','IE','AT','CZ','PL','NO','US','CA','JP','KR','AU']),
       timestamptz '2019-01-01' + random() * interval '2000 days',
       pg_temp.pick(ARRAY['free','free','free','starter','pro','business']),
       round((random() * 5000)::numeric, 2)
FROM (SELECT g,
             pg_temp.pick(ARRAY['Anna','Ben','Chloe','David','Emma','Farid','Grace','Hugo',
               'Ines','Jonas','Kenji','Lena','Mateo','Nora','Omar','Paula','Quentin','Rosa',
               'Sven','Tara','Umar','Vera','Wei','Yara','Zoe']) AS first,
             pg_temp.pick(ARRAY['Smith','Müller','Garcia','Rossi','Dubois','Kowalski','Tanaka',
               'Kim','Silva','Novak','Jensen','Murphy','Schmidt','Lopez','Martin','Nguyen',
               'Okafor','Petrov','Haddad','Costa']) AS last
      FROM generate_series(1, :rows / 20) g) s;

CREATE TABLE orders (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers,
  placed_at timestamptz NOT NULL,
  status text NOT NULL,
  total numeric(12, 2) NOT NULL,
  lines jsonb NOT NULL,
  note text
);
INSERT INTO orders
SELECT g,
       1 + floor(random() * (:rows / 20))::bigint,
       timestamptz '2023-01-01' + random() * interval '700 days',
       pg_temp.pick(ARRAY['paid','paid','paid','shipped','shipped','delivered','refunded','cancelled']),
       round((random() * 400 + 5)::numeric, 2),
       (SELECT jsonb_agg(jsonb_build_object(
                 'sku', 'SKU-' || lpad((floor(random() * 90000) + 10000)::text, 5, '0'),
                 'qty', 1 + floor(random() * 4)::int,
                 'price', round((random() * 120 + 1)::numeric, 2)))
          FROM generate_series(1, 1 + g % 4)),
       CASE WHEN random() < 0.3 THEN pg_temp.words(4 + (g % 9)::int) END
FROM generate_series(1, :rows / 4) g;

CREATE TABLE events (
  id bigint PRIMARY KEY,
  at timestamptz NOT NULL,
  level text NOT NULL,
  service text NOT NULL,
  message text NOT NULL,
  request_id uuid NOT NULL,
  attrs jsonb NOT NULL
);
INSERT INTO events
SELECT g,
       timestamptz '2026-01-01' + g * interval '2 seconds' + random() * interval '1 second',
       pg_temp.pick(ARRAY['info','info','info','info','warn','error','debug']),
       pg_temp.pick(ARRAY['api','checkout','billing','mailer','search','inventory','auth']),
       pg_temp.words(6 + (g % 13)::int),
       md5(random()::text)::uuid,
       jsonb_build_object('http_status', pg_temp.pick(ARRAY['200','200','200','201','404','500','503']),
                          'duration_ms', floor(random() * 2000)::int,
                          'customer', 1 + floor(random() * (:rows / 20))::bigint)
FROM generate_series(1, :rows) g;
