/*
 * bench_asof.c -- as-of lookups in the temporal store against a plain
 * mdb_get over the same LMDB data, in the same run; and the ingest rate of
 * versions.
 *
 * usage: bench_asof [-k KEYS] [-v VERSIONS_PER_KEY] [-n LOOKUPS] [-d DIR]
 * Defaults: 1,000,000 keys x 10 versions, 2,000,000 lookups of each kind,
 * interleaved in rounds so that both see the same machine.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdc.h"
#include "error.h"
#include "row.h"
#include "state.h"
#include "temporal.h"
#include "timefmt.h"

static uint64_t rng = 88172645463325252ULL;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

#define BASE_TS 1700000000000LL
#define STEP_MS 60000LL

/* Builds the key Debezium's user id k would get. */
static size_t key_of(uint64_t k, char *buf)
{
	return (size_t)sprintf(buf, "%llu", (unsigned long long)k);
}

static void die(const char *what, const char *errstr)
{
	fprintf(stderr, "bench_asof: %s: %s\n", what, errstr);
	exit(1);
}

int main(int argc, char **argv)
{
	uint64_t keys = 1000000, versions = 10, lookups = 2000000;
	char dir[256] = "", errstr[512], cmd[512], kbuf[32];
	st_temporal_reader_t *reader;
	st_row_builder_t b = {0};
	st_state_t *st;
	int opt, rounds = 5;
	double t_ingest, t_asof = 0, t_get = 0;
	uint64_t found_asof = 0, found_get = 0, sink = 0;

	while ((opt = getopt(argc, argv, "k:v:n:d:")) != -1) {
		switch (opt) {
		case 'k': keys = strtoull(optarg, NULL, 10); break;
		case 'v': versions = strtoull(optarg, NULL, 10); break;
		case 'n': lookups = strtoull(optarg, NULL, 10); break;
		case 'd': snprintf(dir, sizeof(dir), "%s", optarg); break;
		default:
			fprintf(stderr, "usage: bench_asof [-k KEYS] [-v VERSIONS] "
				"[-n LOOKUPS] [-d DIR]\n");
			return 2;
		}
	}
	if (!*dir) {
		snprintf(dir, sizeof(dir), "/tmp/bench_asof_XXXXXX");
		if (!mkdtemp(dir))
			die("mkdtemp", dir);
	}
	printf("command: bench_asof -k %llu -v %llu -n %llu -d %s\n",
	       (unsigned long long)keys, (unsigned long long)versions,
	       (unsigned long long)lookups, dir);
	if (st_state_open(&st, dir, 64LL << 30, 0, errstr, sizeof(errstr)))
		die("open", errstr);

	/* Ingest: versions in commit-time order, as Debezium delivers them. */
	{
		int64_t t0 = st_time_mono_us();
		uint64_t n = 0;

		for (uint64_t v = 0; v < versions; v++) {
			for (uint64_t k = 0; k < keys; k++) {
				st_value_t val = {.type = ST_VAL_INT};
				st_apply_result_t res;
				st_cdc_msg_t m = {0};
				uint8_t *row;
				size_t len;

				if (n % 100000 == 0) {
					if (st_state_commit(st, errstr, sizeof(errstr)) ||
					    st_state_begin(st, errstr, sizeof(errstr)))
						die("commit", errstr);
				}
				val.i = (int64_t)(k * 31 + v);
				st_row_add(&b, "risk_tier", 9, &val);
				val.i = (int64_t)v;
				st_row_add(&b, "version", 7, &val);
				val.type = ST_VAL_STRING;
				val.s = "gold";
				val.len = 4;
				st_row_add(&b, "segment", 7, &val);
				val.s = "DE";
				val.len = 2;
				st_row_add(&b, "country", 7, &val);
				st_row_finish(&b, &row, &len);
				m.kind = ST_CDC_CHANGE;
				m.op = 'u';
				strcpy(m.table, "users");
				m.key = kbuf;
				m.key_len = key_of(k, kbuf);
				m.ts_ms = BASE_TS + (int64_t)(v * STEP_MS) +
					  (int64_t)(k % 1000);
				m.lsn = (int64_t)n;
				m.row = row;
				m.row_len = len;
				if (st_temporal_apply(st, &m, &res, errstr,
						      sizeof(errstr)))
					die("apply", errstr);
				free(row);
				n++;
			}
		}
		if (st_state_commit(st, errstr, sizeof(errstr)))
			die("commit", errstr);
		t_ingest = (double)(st_time_mono_us() - t0) / 1e6;
		printf("ingest: %llu versions in %.2f s = %.0f versions/s "
		       "(batches of 100,000 per LMDB transaction)\n",
		       (unsigned long long)n, t_ingest, (double)n / t_ingest);
	}

	reader = st_temporal_reader_new(st);
	for (int round = 0; round < rounds; round++) {
		uint64_t per = lookups / (uint64_t)rounds;
		MDB_txn *txn;
		MDB_dbi dbi = st_state_dbi_versions(st);
		int64_t t0;

		if (st_state_read_begin(st, &txn, errstr, sizeof(errstr)))
			die("read", errstr);
		st_temporal_reader_bind(reader, txn);
		/* As-of: a random key at a random time inside its history. */
		t0 = st_time_mono_us();
		for (uint64_t i = 0; i < per; i++) {
			uint64_t k = next_rand() % keys;
			int64_t t = BASE_TS + (int64_t)(next_rand() %
				(versions * STEP_MS));
			const uint8_t *row;
			size_t len;

			if (!st_temporal_lookup(reader, 0, "users", kbuf,
						key_of(k, kbuf), t, &row, &len)) {
				found_asof++;
				sink += row[len - 1];
			}
		}
		t_asof += (double)(st_time_mono_us() - t0) / 1e6;
		/* Plain get: the exact LMDB key of a random existing version
		 * (built outside the timed loop's LMDB call, like the as-of
		 * lookup builds its own). */
		t0 = st_time_mono_us();
		for (uint64_t i = 0; i < per; i++) {
			uint64_t k = next_rand() % keys, v = next_rand() % versions;
			uint8_t key[64];
			size_t klen = key_of(k, kbuf), p = 0;
			uint64_t ts = (uint64_t)(BASE_TS + (int64_t)(v * STEP_MS) +
				       (int64_t)(k % 1000)), lsn = v * keys + k;
			MDB_val mk, md;

			key[p++] = 5;
			memcpy(key + p, "users", 5);
			p += 5;
			key[p++] = (uint8_t)(klen >> 8);
			key[p++] = (uint8_t)klen;
			memcpy(key + p, kbuf, klen);
			p += klen;
			for (int j = 7; j >= 0; j--)
				key[p++] = (uint8_t)(~ts >> (8 * j));
			for (int j = 7; j >= 0; j--)
				key[p++] = (uint8_t)(~lsn >> (8 * j));
			mk.mv_data = key;
			mk.mv_size = p;
			if (!mdb_get(txn, dbi, &mk, &md)) {
				found_get++;
				sink += ((const uint8_t *)md.mv_data)[md.mv_size - 1];
			}
		}
		t_get += (double)(st_time_mono_us() - t0) / 1e6;
		st_state_read_end(st);
	}
	printf("as-of lookup: %llu in %.2f s = %.0f lookups/s (%.0f ns each), "
	       "%llu found\n", (unsigned long long)lookups, t_asof,
	       (double)lookups / t_asof, t_asof * 1e9 / (double)lookups,
	       (unsigned long long)found_asof);
	printf("plain mdb_get: %llu in %.2f s = %.0f gets/s (%.0f ns each), "
	       "%llu found\n", (unsigned long long)lookups, t_get,
	       (double)lookups / t_get, t_get * 1e9 / (double)lookups,
	       (unsigned long long)found_get);
	printf("ratio as-of / plain get (rate): %.2f  [target >= 0.80]\n",
	       t_get / t_asof);
	printf("(checksum %llu)\n", (unsigned long long)sink);
	st_temporal_reader_free(reader);
	st_state_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		return 1;
	return found_get == lookups ? 0 : 1;
}
