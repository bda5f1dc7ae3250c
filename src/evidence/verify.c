/* The evidence dispatcher: {"platform": P, ...} to its verifier, and what
 * each platform's evidence says as one set of claims (evidence.h).
 *
 *   sim  veil-las's signed claims (sim.c)
 *   sgx  {"quote": base64 SGX v3 quote}               (dcap.c, dcap_verify.c)
 *   tdx  {"quote": base64 TDX v4/v5 quote}            (dcap.c, dcap_verify.c)
 *   snp  {"report": base64 1184-byte report, "vcek": base64 DER or PEM
 *         certificate, or "auxblob": base64 GHCB certificate table}  (snp.c)
 *
 * Hardware evidence is bound to the connection by the first 32 bytes of its
 * report data; the TCB status of an Intel quote comes from the collateral
 * (collateral.c), and is "not-evaluated" without one. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "internal.h"
#include "veil/collateral.h"
#include "veil/cursor.h"
#include "veil/dcap.h"
#include "veil/evidence.h"
#include "veil/snp.h"
#include "veil/tls.h"

static const struct veil_collateral *global_collateral;

void veil_evidence_set_collateral(const struct veil_collateral *c)
{
	global_collateral = c;
}

/* Intel's status as claims spell it */
static const char *status_claim(enum veil_tcb_status s)
{
	switch (s) {
	case VEIL_TCB_UP_TO_DATE:
		return "up-to-date";
	case VEIL_TCB_SW_HARDENING_NEEDED:
		return "sw-hardening-needed";
	case VEIL_TCB_CONFIGURATION_NEEDED:
		return "configuration-needed";
	case VEIL_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED:
		return "configuration-and-sw-hardening-needed";
	case VEIL_TCB_OUT_OF_DATE:
		return "out-of-date";
	case VEIL_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED:
		return "out-of-date-configuration-needed";
	case VEIL_TCB_REVOKED:
		return "revoked";
	}
	return "revoked";
}

static void hexf(const uint8_t *p, size_t n, char *out)
{
	veil_hex(p, n, out);
}

static int binding(const uint8_t rd[64], const uint8_t expected[static VEIL_SHA256_SIZE],
		   const struct veil_evidence_opts *o, struct veil_diags *d)
{
	if (o->no_binding || !CRYPTO_memcmp(rd, expected, VEIL_SHA256_SIZE))
		return 0;
	char hex[17];
	hexf(rd, 8, hex);
	veil_diag(d,
		  "evidence is bound to another TLS key (report_data %s... does not match this "
		  "connection)",
		  hex);
	return VEIL_EINVAL;
}

static int b64_field(json_t *j, const char *key, size_t max, uint8_t **out, size_t *n,
		     const char *what, struct veil_diags *d)
{
	const char *s = json_string_value(json_object_get(j, key));
	int rc = s ? veil_b64_decode(s, max, out, n) : VEIL_EINVAL;
	if (rc)
		veil_diag(d, "%s evidence: '%s' is %s", what, key,
			  !s                  ? "missing"
			  : rc == VEIL_ELIMIT ? "too large"
					      : "not base64");
	return rc;
}

static int verify_dcap(json_t *j, const char *platform,
		       const uint8_t expected[static VEIL_SHA256_SIZE],
		       const struct veil_evidence_opts *o, struct veil_claims *c,
		       struct veil_diags *d)
{
	uint8_t *q = NULL;
	size_t n = 0;
	char why[512] = "";
	struct veil_dcap_quote quote;
	struct veil_dcap_pck pck;
	int tdx = !strcmp(platform, "tdx"), rc;
	if ((rc = b64_field(j, "quote", 64 * 1024, &q, &n, platform, d)))
		return rc;
	rc = VEIL_EINVAL;
	time_t at = o->at ? (time_t)o->at : time(NULL);
	if (veil_dcap_parse(q, n, &quote, why, sizeof(why))) {
		veil_diag(d, "%s evidence: %s", platform, why);
		goto out;
	}
	if ((quote.tee_type == VEIL_DCAP_TEE_TDX) != tdx) {
		veil_diag(d, "%s evidence: the quote is a%s quote", platform,
			  quote.tee_type == VEIL_DCAP_TEE_TDX ? " TDX" : "n SGX");
		goto out;
	}
	if (veil_dcap_verify(&quote, at, &pck, why, sizeof(why))) {
		veil_diag(d, "%s evidence: %s", platform, why);
		goto out;
	}
	const uint8_t *rd = tdx ? quote.td.report_data : quote.sgx.report_data;
	if (binding(rd, expected, o, d))
		goto out;
	memset(c, 0, sizeof(*c));
	snprintf(c->platform, sizeof(c->platform), "%s", platform);
	c->hardware = 1;
	memcpy(c->report_data, rd, 64);
	if (tdx) {
		hexf(quote.td.mrtd, 48, c->measurement);
		for (int i = 0; i < 4; i++)
			hexf(quote.td.rtmr[i], 48, c->rtmr[i]);
		hexf(quote.td.mrconfigid, 48, c->mrconfigid);
		hexf(quote.td.mrowner, 48, c->mrowner);
		c->debug = quote.td.debug;
	} else {
		hexf(quote.sgx.mrenclave, 32, c->measurement);
		hexf(quote.sgx.mrsigner, 32, c->signer);
		c->isvprodid = quote.sgx.isvprodid;
		c->isvsvn = quote.sgx.isvsvn;
		c->debug = quote.sgx.debug;
	}
	/* the platform: the PCK leaf's key */
	memcpy(c->platform_key, pck.key_hash, sizeof(c->platform_key));
	const struct veil_collateral *col = o->collateral;
	if (!col) {
		snprintf(c->tcb_status, sizeof(c->tcb_status), "not-evaluated");
		rc = 0;
		goto out;
	}
	struct veil_tcb_query tq;
	struct veil_tcb_result tr;
	memset(&tq, 0, sizeof(tq));
	tq.tee = tdx ? VEIL_TEE_TDX : VEIL_TEE_SGX;
	memcpy(tq.fmspc, pck.fmspc, sizeof(tq.fmspc));
	tq.pce_svn = pck.pce_svn;
	memcpy(tq.cpu_svn, pck.tcb_comp_svn, sizeof(tq.cpu_svn));
	if (tdx) {
		memcpy(tq.tee_tcb_svn, quote.td.tee_tcb_svn, sizeof(tq.tee_tcb_svn));
		memcpy(tq.mr_signer_seam, quote.td.mrsignerseam, sizeof(tq.mr_signer_seam));
		for (int i = 0; i < 8; i++)
			tq.seam_attributes[i] = (uint8_t)(quote.td.seam_attributes >> (8 * i));
	}
	memcpy(tq.qe_mrsigner, quote.qe_report.mrsigner, sizeof(tq.qe_mrsigner));
	tq.qe_isvprodid = quote.qe_report.isvprodid;
	tq.qe_isvsvn = quote.qe_report.isvsvn;
	tq.qe_miscselect = quote.qe_report.miscselect;
	memcpy(tq.qe_attributes, quote.qe_report.attributes, sizeof(tq.qe_attributes));
	if (pck.serial_size <= VEIL_PCK_SERIAL_MAX) {
		memcpy(tq.pck_serial, pck.serial, pck.serial_size);
		tq.pck_serial_size = pck.serial_size;
	}
	tq.pck_ca =
	    pck.ca == VEIL_DCAP_PCK_PROCESSOR_CA ? VEIL_PCK_CA_PROCESSOR : VEIL_PCK_CA_PLATFORM;
	if (veil_tcb_evaluate(col, &tq, at, &tr, why, sizeof(why))) {
		veil_diag(d, "%s evidence: TCB status: %s", platform, why);
		goto out;
	}
	snprintf(c->tcb_status, sizeof(c->tcb_status), "%s", status_claim(tr.status));
	size_t used = 0;
	for (size_t i = 0; i < tr.advisory_count; i++) {
		int w = snprintf(c->advisories + used, sizeof(c->advisories) - used, "%s%s",
				 i ? "," : "", tr.advisory_ids[i]);
		if (w < 0 || (size_t)w >= sizeof(c->advisories) - used) {
			veil_diag(d, "%s evidence: too many advisories", platform);
			goto out;
		}
		used += (size_t)w;
	}
	rc = 0;
out:
	free(q);
	return rc;
}

/* The GHCB certificate table (an extended report's certificates):
 * {GUID 16, offset le32, length le32} entries up to an all-zero one, the
 * offsets from the table's start. The VCEK's or VLEK's certificate. */
static int cert_from_table(const uint8_t *t, size_t n, enum veil_snp_signer want,
			   const uint8_t **cert, size_t *len)
{
	/* RFC 4122 byte order */
	static const uint8_t vcek[16] = {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
					 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd};
	static const uint8_t vlek[16] = {0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e,
					 0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1};
	static const uint8_t zero[16];
	const uint8_t *guid = want == VEIL_SNP_SIGNER_VLEK ? vlek : vcek;
	struct veil_cursor c;
	veil_cur_init(&c, t, n);
	for (int i = 0; i < 64; i++) {
		uint8_t g[16];
		uint32_t off, l;
		veil_cur_copy(&c, g, sizeof(g));
		veil_cur_le32(&c, &off);
		veil_cur_le32(&c, &l);
		/* not secret: a GUID of the evidence format */
		if (!veil_cur_ok(&c) || !memcmp(g, zero, sizeof(g)))
			return VEIL_EINVAL;
		/* not secret: a GUID of the evidence format */
		if (memcmp(g, guid, sizeof(g)))
			continue;
		struct veil_cursor whole, sub;
		veil_cur_init(&whole, t, n);
		if (!veil_cur_skip(&whole, off) || !veil_cur_sub(&whole, l, &sub) || !l)
			return VEIL_EINVAL;
		return veil_cur_view(&sub, l, cert) ? (*len = l, 0) : VEIL_EINVAL;
	}
	return VEIL_EINVAL;
}

static int verify_snp(json_t *j, const uint8_t expected[static VEIL_SHA256_SIZE],
		      const struct veil_evidence_opts *o, struct veil_claims *c,
		      struct veil_diags *d)
{
	uint8_t *r = NULL, *key = NULL;
	size_t n = 0, kn = 0;
	const uint8_t *cert = NULL;
	size_t cert_len = 0;
	char why[512] = "";
	struct veil_snp_report rep;
	struct veil_snp_verified v;
	int rc;
	if ((rc = b64_field(j, "report", 4096, &r, &n, "snp", d)))
		return rc;
	rc = VEIL_EINVAL;
	if (veil_snp_parse(r, n, &rep, why, sizeof(why))) {
		veil_diag(d, "snp evidence: %s", why);
		goto out;
	}
	if (json_object_get(j, "vcek")) {
		if (b64_field(j, "vcek", 16 * 1024, &key, &kn, "snp", d))
			goto out;
		cert = key, cert_len = kn;
	} else if (json_object_get(j, "auxblob")) {
		if (b64_field(j, "auxblob", 64 * 1024, &key, &kn, "snp", d))
			goto out;
		if (cert_from_table(key, kn, rep.signing_key, &cert, &cert_len)) {
			veil_diag(d, "snp evidence: the certificate table holds no %s certificate",
				  veil_snp_signer_name(rep.signing_key));
			goto out;
		}
	} else {
		veil_diag(d, "snp evidence: no VCEK or VLEK ('vcek' or 'auxblob')");
		goto out;
	}
	time_t at = o->at ? (time_t)o->at : time(NULL);
	if (veil_snp_verify(&rep, cert, cert_len, NULL, at, &v, why, sizeof(why))) {
		veil_diag(d, "snp evidence: %s", why);
		goto out;
	}
	if (binding(rep.report_data, expected, o, d))
		goto out;
	memset(c, 0, sizeof(*c));
	snprintf(c->platform, sizeof(c->platform), "snp");
	c->hardware = 1;
	memcpy(c->report_data, rep.report_data, 64);
	hexf(rep.measurement, 48, c->measurement);
	hexf(rep.host_data, 32, c->host_data);
	c->snp_policy = rep.policy;
	c->guest_svn = rep.guest_svn;
	c->vmpl = rep.vmpl;
	c->snp_fmc_spl = v.reported_tcb.fmc_spl;
	c->snp_bl_spl = v.reported_tcb.bl_spl;
	c->snp_tee_spl = v.reported_tcb.tee_spl;
	c->snp_snp_spl = v.reported_tcb.snp_spl;
	c->snp_ucode_spl = v.reported_tcb.microcode_spl;
	c->debug = rep.debug;
	memcpy(c->platform_key, v.key_hash, sizeof(c->platform_key));
	/* AMD's TCB is the VCEK's (checked against the report); whether it is
	 * recent enough is the policy's snp.tcb_min */
	snprintf(c->tcb_status, sizeof(c->tcb_status), "not-evaluated");
	rc = 0;
out:
	free(r);
	free(key);
	return rc;
}

int veil_evidence_verify_opts(const char *evidence, size_t size,
			      const uint8_t expected_report_data[static VEIL_SHA256_SIZE],
			      const struct veil_evidence_opts *opts, struct veil_claims *claims,
			      struct veil_diags *d)
{
	struct veil_evidence_opts none = {0};
	const struct veil_evidence_opts *o = opts ? opts : &none;
	if (size > VEIL_EVIDENCE_MAX) {
		veil_diag(d, "evidence larger than %d bytes", VEIL_EVIDENCE_MAX);
		return VEIL_ELIMIT;
	}
	json_error_t err;
	json_t *j = json_loadb(evidence, size, JSON_REJECT_DUPLICATES, &err);
	const char *platform = NULL;
	int version = 0, rc = VEIL_EINVAL;
	if (!j || json_unpack(j, "{s:s}", "platform", &platform)) {
		veil_diag(d, "evidence is not a JSON object with a 'platform'");
	} else if (!strcmp(platform, "sim")) {
		rc = veil_sim_verify_json(j, expected_report_data, o->no_binding, claims, d);
	} else if (strcmp(platform, "sgx") && strcmp(platform, "tdx") && strcmp(platform, "snp")) {
		veil_diag(d, "evidence of unknown platform '%.32s'", platform);
	} else if (json_unpack(j, "{s:i}", "version", &version) || version != 1) {
		veil_diag(d, "%s evidence: version must be 1", platform);
	} else if (!strcmp(platform, "snp")) {
		rc = verify_snp(j, expected_report_data, o, claims, d);
	} else {
		rc = verify_dcap(j, platform, expected_report_data, o, claims, d);
	}
	json_decref(j);
	return rc;
}

int veil_evidence_verify(const char *evidence, size_t size,
			 const uint8_t expected_report_data[static VEIL_SHA256_SIZE],
			 struct veil_claims *claims, struct veil_diags *d)
{
	struct veil_evidence_opts o = {.collateral = global_collateral};
	return veil_evidence_verify_opts(evidence, size, expected_report_data, &o, claims, d);
}
