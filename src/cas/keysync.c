/* A replica on PostgreSQL follows the master key's record a rotation
 * publishes in the database (table veil_master_key, rotate.c), so that
 * replicas on other hosts load each step's keys as the one whose
 * veil-cas rotate-master-key signals does:
 *   - at start, a record in the database newer than DATA/master.key is
 *     written there (atomic rename, 0600) before the key process opens it;
 *   - each second the main thread reads the record's version (one SELECT);
 *     when it moved, a newer record is written to master.key and loaded as
 *     SIGUSR1 loads it (a fresh key process, the requests begun before it
 *     drained: main.c reload_master_key), then the replica's row of
 *     veil_replica_keys says that version, which the rotation waits for.
 * "Newer" is the record's rotation state, never the file's age: current
 * version first, then within one version retire < none < pending (begin
 * adds pending, switch makes it current and marks the old one retired,
 * the destroy drops the mark). The record holds no key in clear (the token
 * keeps the keys; the code-key root is wrapped by it). A key-file CAS has
 * nothing to follow (rotation refuses it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cas.h"
#include "vault_record.h"

static struct p11_record *parse(const char *text);

/* the record's place in a rotation; 0: not a PKCS#11 record */
static unsigned long long rank_of(const char *text)
{
	struct p11_record *r = parse(text);
	unsigned long long rank = r ? 4ull * r->current + (r->nretire ? 0 : r->pending ? 2 : 1) : 0;
	free(r);
	return rank;
}

static char *read_record(const char *keyfile)
{
	char *text = NULL;
	size_t size = 0;
	struct veil_diags d;
	veil_diags_init(&d);
	if (veil_read_file(keyfile, RECORD_MAX, &text, &size, &d))
		text = NULL;
	veil_diags_free(&d);
	if (!text)
		return NULL;
	char *s = strndup(text, size);
	free(text);
	return s;
}

static struct p11_record *parse(const char *text)
{
	size_t n = text ? strlen(text) : 0;
	char *copy = n && n <= RECORD_MAX ? strndup(text, n) : NULL;
	struct p11_record *r = copy ? calloc(1, sizeof(*r)) : NULL;
	if (r && cas_mk_record_parse(copy, n, r)) {
		free(r);
		r = NULL;
	}
	free(copy);
	return r;
}

/* the database's record into keyfile, but with this replica's module line
 * (the PKCS#11 library may be elsewhere on this host); a record of another
 * token or key is refused */
static int take_record(const char *keyfile, const char *record, struct veil_diags *d)
{
	char *text = read_record(keyfile);
	struct p11_record *mine = parse(text), *theirs = parse(record);
	struct veil_buf out = {.max = RECORD_MAX};
	int rc = VEIL_EINVAL;
	free(text);
	if (!mine || !theirs) {
		veil_diag(d, "%s or the database's master key record is not a PKCS#11 record",
			  keyfile);
	} else if (strcmp(mine->token, theirs->token) || strcmp(mine->object, theirs->object)) {
		veil_diag(d,
			  "the database's master key record names token '%s' object '%s', %s "
			  "token '%s' object '%s': not taken (another CAS's database?)",
			  theirs->token, theirs->object, keyfile, mine->token, mine->object);
	} else {
		memcpy(theirs->module, mine->module, sizeof(theirs->module));
		rc = cas_mk_record_format(theirs, &out) ? VEIL_ENOMEM : 0;
		if (rc)
			veil_diag(d, "the database's master key record: out of memory");
		else
			rc = veil_write_file(keyfile, out.data, out.size, 0600, d);
	}
	veil_buf_free(&out);
	free(mine);
	free(theirs);
	return rc;
}

int cas_keysync_start(struct cas_keysync *ks, const char *url, const char *keyfile, bool take,
		      struct veil_diags *d)
{
	memset(ks, 0, sizeof(*ks));
	char *mine = url ? read_record(keyfile) : NULL;
	unsigned long long have = rank_of(mine);
	free(mine);
	if (!have)
		return 0; /* SQLite or a key file: nothing to follow */
	ks->on = true;
	if (!take)
		return 0;
	const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
	const char *const vals[] = {"10", "veil-cas", url, NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	int rc = 0;
	if (PQstatus(c) != CONNECTION_OK) {
		veil_diag(d, "PostgreSQL (--store): cannot connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return VEIL_EIO;
	}
	PGresult *r = PQexec(c, "SELECT record FROM veil_master_key");
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		const char *rec = PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : NULL;
		unsigned long long theirs = rank_of(rec);
		if (theirs > have) {
			rc = take_record(keyfile, rec, d);
			if (!rc)
				fprintf(stderr,
					"veil-cas: master.key taken from the database (a "
					"rotation moved on while this replica was stopped)\n");
		}
	} else if (!state || strcmp(state, "42P01")) { /* 42P01: schema 2, no record yet */
		veil_diag(d, "PostgreSQL (--store): cannot read the master key's record: %s",
			  PQerrorMessage(c));
		rc = VEIL_EIO;
	}
	PQclear(r);
	PQfinish(c);
	return rc;
}

void cas_keysync_loading(struct cas_keysync *ks, const char *keyfile)
{
	if (!ks->on)
		return;
	free(ks->loaded);
	ks->loaded = read_record(keyfile);
	ks->fresh = true;
}

int cas_keysync_check(struct cas_keysync *ks, struct veil_store *st, const char *keyfile,
		      char *note, size_t cap)
{
	long long version = 0;
	char *record = NULL, *why = NULL, *file = NULL;
	int want = 0;
	if (!ks->on || veil_store_pg_master_key(st, &version, &record, &why) || !version ||
	    version <= ks->version)
		goto out;
	unsigned long long theirs = rank_of(record);
	file = read_record(keyfile);
	unsigned long long have = rank_of(file);
	if (!theirs) {
		cas_warn_limited("the database's master key record is not one");
		ks->version = version;
		goto out;
	}
	if (theirs > have) {
		struct veil_diags d;
		veil_diags_init(&d);
		if (take_record(keyfile, record, &d)) {
			cas_warn_limited("cannot write master.key from the database: %s",
					 d.count ? d.msgs[0] : "?");
			veil_diags_free(&d);
			goto out;
		}
		veil_diags_free(&d);
		free(file);
		file = read_record(keyfile);
		have = rank_of(file);
	}
	/* each step is loaded again, as SIGUSR1 does (a step that leaves the
	 * record as it was still empties the caches and drains the requests),
	 * unless a reload since the last version already did: the veil-cas
	 * whose rotation signals it. master.key newer than the database: that
	 * rotation wrote it and signals. */
	if (theirs >= have && file && (!ks->loaded || strcmp(file, ks->loaded) || !ks->fresh)) {
		snprintf(note, cap, "%s (from the database, version %lld)", why, version);
		want = 1;
		goto out;
	}
	if (rank_of(ks->loaded) >= theirs) {
		if (veil_store_pg_key_loaded(st, version, cas_keyproc_loaded()))
			cas_warn_limited("cannot record the loaded master key in the database");
		else
			ks->version = version, ks->fresh = false;
	}
out:
	free(record);
	free(why);
	free(file);
	return want;
}

void cas_keysync_failed(struct cas_keysync *ks)
{
	free(ks->loaded);
	ks->loaded = NULL; /* the key process that serves loaded something else */
}

void cas_keysync_free(struct cas_keysync *ks)
{
	free(ks->loaded);
	ks->loaded = NULL;
}
