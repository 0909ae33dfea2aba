-- Deterministic seed data: 1,000 users, 200 merchants, 500 items.
-- Loaded once by scripts/stack after schema.sql; reloading changes nothing.

INSERT INTO merchants (id, name, category, mcc, country, risk_score)
SELECT m,
       'merchant-' || m,
       (ARRAY['grocery','electronics','travel','fashion','gaming','fuel','restaurants','crypto'])[1 + m % 8],
       (ARRAY[5411, 5732, 4722, 5651, 5816, 5541, 5812, 6051])[1 + m % 8],
       (ARRAY['US','GB','DE','FR','NL','BR','IN','NG'])[1 + (m * 7) % 8],
       round(((m * 37) % 100) / 100.0, 2)
FROM generate_series(1, 200) AS m
ON CONFLICT (id) DO NOTHING;

INSERT INTO users (id, name, email, country, segment, risk_tier, bio)
SELECT u,
       'user-' || u,
       'user' || u || '@example.com',
       (ARRAY['US','GB','DE','FR','NL','BR','IN','NG'])[1 + (u * 3) % 8],
       (ARRAY['standard','standard','silver','gold','platinum'])[1 + u % 5],
       1 + (u * 13) % 5,
       repeat('Long biography of user ' || u || '. ', 120)
FROM generate_series(1, 1000) AS u
ON CONFLICT (id) DO NOTHING;

INSERT INTO items (id, merchant_id, title, category, price, description)
SELECT i,
       1 + i % 200,
       'item-' || i,
       (ARRAY['book','phone','ticket','shirt','game','coffee'])[1 + i % 6],
       round((5 + (i * 7919) % 50000 / 100.0)::numeric, 2),
       'Description of item ' || i
FROM generate_series(1, 500) AS i
ON CONFLICT (id) DO NOTHING;
