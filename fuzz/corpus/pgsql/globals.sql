--
-- PostgreSQL database cluster dump
--

\restrict 56GEJtWWsgbaZsCSmC6KQxI6LsmEUhagKyxC8URr25y3DwG8vbPE5TV41Wv0OTw

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE postgres;
CREATE ROLE app NOLOGIN;
GRANT app TO postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

--
-- User Configurations
--








\unrestrict 56GEJtWWsgbaZsCSmC6KQxI6LsmEUhagKyxC8URr25y3DwG8vbPE5TV41Wv0OTw

--
-- PostgreSQL database cluster dump complete
--

