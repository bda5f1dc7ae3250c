/* veil's TCB status for one query, for tests/evidence/check_collateral.py.
 *
 * Usage: tcb_status --at EPOCH --query JSON SOURCE...
 *   SOURCE: --bundle FILE (a dcap-qvl bundle), --dir DIR (the folder layout
 *   of include/veil/collateral.h), --chain PEM then --pcs FILE (PCS bodies
 *   signed by that chain's leaf), --root-crl DER, --pck-crl-chain PEM then
 *   --pck-crl DER.
 *   JSON: {"tee":"sgx"|"tdx","fmspc":hex,"pce_svn":N,"cpu_svn":hex,
 *   "tee_tcb_svn":hex,"mr_signer_seam":hex,"seam_attributes":hex,
 *   "qe_mrsigner":hex,"qe_isvprodid":N,"qe_isvsvn":N,"qe_miscselect":N,
 *   "qe_attributes":hex,"pck_serial":hex,"pck_ca":"platform"|"processor"}
 * Prints one JSON object: {"status","platform_status","qe_status",
 * "advisory_ids","tcb_date","next_update"} and exits 0, or {"error": why}
 * and exits 1 (2 for a usage error). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "veil/collateral.h"
#include "veil/common.h"

static int usage(const char *msg)
{
	fprintf(stderr, "tcb_status: %s\n", msg);
	return 2;
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t size = 0, cap = 0;
	for (;;) {
		if (size + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 65536;
			char *grown = realloc(buf, cap);
			if (!grown) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = grown;
		}
		size_t got = fread(buf + size, 1, 4096, f);
		size += got;
		if (got == 0)
			break;
	}
	fclose(f);
	buf[size] = '\0';
	*n = size;
	return buf;
}

static int hex_field(json_t *q, const char *name, uint8_t *out, size_t size, int required)
{
	json_t *v = json_object_get(q, name);
	if (!v)
		return required ? -1 : 0;
	const char *s = json_string_value(v);
	if (!s || strlen(s) != 2 * size)
		return -1;
	for (size_t i = 0; i < size; i++) {
		char two[3] = {s[2 * i], s[2 * i + 1], 0};
		char *end;
		out[i] = (uint8_t)strtoul(two, &end, 16);
		if (*end)
			return -1;
	}
	return 0;
}

static int parse_query(const char *text, struct veil_tcb_query *q)
{
	json_error_t err;
	json_t *o = json_loads(text, 0, &err);
	int rc = -1;
	memset(q, 0, sizeof(*q));
	if (!json_is_object(o))
		goto out;
	const char *tee = json_string_value(json_object_get(o, "tee"));
	const char *ca = json_string_value(json_object_get(o, "pck_ca"));
	const char *serial = json_string_value(json_object_get(o, "pck_serial"));
	if (!tee || !ca || !serial || strlen(serial) % 2 ||
	    strlen(serial) / 2 > sizeof(q->pck_serial))
		goto out;
	q->tee = strcmp(tee, "tdx") == 0 ? VEIL_TEE_TDX : VEIL_TEE_SGX;
	q->pck_ca = strcmp(ca, "processor") == 0 ? VEIL_PCK_CA_PROCESSOR : VEIL_PCK_CA_PLATFORM;
	q->pce_svn = (uint16_t)json_integer_value(json_object_get(o, "pce_svn"));
	q->qe_isvprodid = (uint16_t)json_integer_value(json_object_get(o, "qe_isvprodid"));
	q->qe_isvsvn = (uint16_t)json_integer_value(json_object_get(o, "qe_isvsvn"));
	q->qe_miscselect = (uint32_t)json_integer_value(json_object_get(o, "qe_miscselect"));
	q->pck_serial_size = strlen(serial) / 2;
	if (hex_field(o, "fmspc", q->fmspc, 6, 1) || hex_field(o, "cpu_svn", q->cpu_svn, 16, 1) ||
	    hex_field(o, "tee_tcb_svn", q->tee_tcb_svn, 16, 0) ||
	    hex_field(o, "mr_signer_seam", q->mr_signer_seam, 48, 0) ||
	    hex_field(o, "seam_attributes", q->seam_attributes, 8, 0) ||
	    hex_field(o, "qe_mrsigner", q->qe_mrsigner, 32, 1) ||
	    hex_field(o, "qe_attributes", q->qe_attributes, 16, 1) ||
	    hex_field(o, "pck_serial", q->pck_serial, q->pck_serial_size, 1))
		goto out;
	rc = 0;
out:
	json_decref(o);
	return rc;
}

static void format_date(time_t t, char *out, size_t cap)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int main(int argc, char **argv)
{
	struct veil_collateral *c = veil_collateral_new();
	struct veil_tcb_query q;
	const char *query = NULL, *chain_path = NULL, *pck_chain_path = NULL;
	char why[512] = "";
	time_t at = 0;
	int rc = 0;
	if (!c)
		return usage("the compiled-in Intel root does not load");
	for (int i = 1; i < argc && rc == 0; i++) {
		const char *opt = argv[i], *arg = i + 1 < argc ? argv[i + 1] : NULL;
		if (!arg)
			return usage("an option without its value");
		i++;
		if (strcmp(opt, "--at") == 0) {
			at = (time_t)strtoll(arg, NULL, 10);
		} else if (strcmp(opt, "--query") == 0) {
			query = arg;
		} else if (strcmp(opt, "--chain") == 0) {
			chain_path = arg;
		} else if (strcmp(opt, "--pck-crl-chain") == 0) {
			pck_chain_path = arg;
		} else if (strcmp(opt, "--dir") == 0) {
			veil_collateral_free(c);
			c = NULL;
			rc = veil_collateral_load_dir(arg, &c, why, sizeof(why));
		} else {
			size_t n = 0, chain_n = 0;
			char *data = slurp(arg, &n), *chain = NULL;
			const char *chain_file = strcmp(opt, "--pcs") == 0       ? chain_path
						 : strcmp(opt, "--pck-crl") == 0 ? pck_chain_path
										 : NULL;
			if (chain_file && !(chain = slurp(chain_file, &chain_n)))
				return usage("cannot read a chain");
			if (!data)
				return usage("cannot read a file");
			if (strcmp(opt, "--bundle") == 0)
				rc = veil_collateral_load_bundle(c, data, n, why, sizeof(why));
			else if (strcmp(opt, "--pcs") == 0 && chain)
				rc = veil_collateral_load_pcs_json(c, data, n, chain, chain_n, why,
								   sizeof(why));
			else if (strcmp(opt, "--root-crl") == 0)
				rc = veil_collateral_load_crl(c, (uint8_t *)data, n, NULL, 0, why,
							      sizeof(why));
			else if (strcmp(opt, "--pck-crl") == 0 && chain)
				rc = veil_collateral_load_crl(c, (uint8_t *)data, n, chain, chain_n,
							      why, sizeof(why));
			else
				return usage(
				    "unknown option (or --pcs/--pck-crl before its chain)");
			free(data);
			free(chain);
		}
	}
	if (!query || parse_query(query, &q))
		return usage("--query JSON is missing or malformed");
	struct veil_tcb_result r;
	if (rc == 0)
		rc = veil_tcb_evaluate(c, &q, at, &r, why, sizeof(why));
	veil_collateral_free(c);
	if (rc) {
		json_t *e = json_pack("{s:s}", "error", why);
		char *s = json_dumps(e, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(e);
		return 1;
	}
	json_t *ids = json_array(), *out;
	for (size_t i = 0; i < r.advisory_count; i++)
		json_array_append_new(ids, json_string(r.advisory_ids[i]));
	char tcb_date[32], next_update[32];
	format_date(r.tcb_date, tcb_date, sizeof(tcb_date));
	format_date(r.next_update, next_update, sizeof(next_update));
	out = json_pack("{s:s,s:s,s:s,s:o,s:s,s:s}", "status", veil_tcb_status_name(r.status),
			"platform_status", veil_tcb_status_name(r.platform_status), "qe_status",
			veil_tcb_status_name(r.qe_status), "advisory_ids", ids, "tcb_date",
			tcb_date, "next_update", next_update);
	char *text = json_dumps(out, JSON_COMPACT);
	printf("%s\n", text);
	free(text);
	json_decref(out);
	return 0;
}
