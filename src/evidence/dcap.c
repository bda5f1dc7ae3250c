/* Intel DCAP quote parser (the layout is in include/veil/dcap.h). Every byte
 * is read through the bounded cursor; a length that does not fit is refused
 * with the field's name and its offset in the quote. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "veil/common.h"
#include "veil/cursor.h"
#include "veil/dcap.h"

__attribute__((format(printf, 3, 4))) static int refuse(char *why, size_t cap, const char *fmt, ...)
{
	if (why && cap) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, cap, fmt, ap);
		va_end(ap);
	}
	return VEIL_EINVAL;
}

/* A cursor over part of the quote, knowing where that part starts, so a
 * refusal names the absolute offset. */
struct region {
	struct veil_cursor cur;
	size_t base;
};

static size_t region_at(const struct region *r)
{
	return r->base + veil_cur_pos(&r->cur);
}

/* n bytes of the field `name`, in place; false (with the reason) if fewer remain */
static bool field(struct region *r, size_t n, const char *name, const uint8_t **out, char *why,
		  size_t cap)
{
	size_t at = region_at(r), left = veil_cur_left(&r->cur);
	if (veil_cur_view(&r->cur, n, out))
		return true;
	refuse(why, cap, "%s at offset %zu needs %zu bytes, %zu left", name, at, n, left);
	return false;
}

static bool field_le16(struct region *r, const char *name, uint16_t *out, char *why, size_t cap)
{
	const uint8_t *p;
	if (!field(r, 2, name, &p, why, cap))
		return false;
	*out = (uint16_t)(p[0] | p[1] << 8);
	return true;
}

static bool field_le32(struct region *r, const char *name, uint32_t *out, char *why, size_t cap)
{
	const uint8_t *p;
	if (!field(r, 4, name, &p, why, cap))
		return false;
	*out = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	return true;
}

/* the next n bytes as a region of their own (the parent moves past them) */
static bool sub_region(struct region *r, size_t n, const char *name, struct region *sub, char *why,
		       size_t cap)
{
	size_t at = region_at(r), left = veil_cur_left(&r->cur);
	if (veil_cur_sub(&r->cur, n, &sub->cur)) {
		sub->base = at;
		return true;
	}
	refuse(why, cap, "%s at offset %zu declares %zu bytes, %zu left", name, at, n, left);
	return false;
}

static bool nothing_left(const struct region *r, const char *after, char *why, size_t cap)
{
	if (veil_cur_done(&r->cur))
		return true;
	refuse(why, cap, "%zu unexpected bytes after the %s at offset %zu", veil_cur_left(&r->cur),
	       after, region_at(r));
	return false;
}

/* An SGX report body (384 bytes, always available: the caller took them). */
static void decode_sgx_report(const uint8_t *raw, struct veil_dcap_sgx_report *r)
{
	struct veil_cursor c;
	veil_cur_init(&c, raw, VEIL_DCAP_SGX_REPORT_SIZE);
	memset(r, 0, sizeof(*r));
	veil_cur_copy(&c, r->cpusvn, sizeof(r->cpusvn));
	veil_cur_le32(&c, &r->miscselect);
	veil_cur_skip(&c, 12);
	veil_cur_copy(&c, r->isv_ext_prod_id, sizeof(r->isv_ext_prod_id));
	veil_cur_copy(&c, r->attributes, sizeof(r->attributes));
	veil_cur_copy(&c, r->mrenclave, sizeof(r->mrenclave));
	veil_cur_skip(&c, 32);
	veil_cur_copy(&c, r->mrsigner, sizeof(r->mrsigner));
	veil_cur_skip(&c, 32);
	veil_cur_copy(&c, r->config_id, sizeof(r->config_id));
	veil_cur_le16(&c, &r->isvprodid);
	veil_cur_le16(&c, &r->isvsvn);
	veil_cur_le16(&c, &r->config_svn);
	veil_cur_skip(&c, 42);
	veil_cur_copy(&c, r->isv_family_id, sizeof(r->isv_family_id));
	veil_cur_copy(&c, r->report_data, sizeof(r->report_data));
	r->debug = (r->attributes[0] & 0x02) != 0;
}

/* A TD report body: 584 bytes, or 648 for TDX 1.5 (body type 3). */
static void decode_td_report(const uint8_t *raw, size_t size, struct veil_dcap_td_report *r)
{
	struct veil_cursor c;
	veil_cur_init(&c, raw, size);
	memset(r, 0, sizeof(*r));
	veil_cur_copy(&c, r->tee_tcb_svn, sizeof(r->tee_tcb_svn));
	veil_cur_copy(&c, r->mrseam, sizeof(r->mrseam));
	veil_cur_copy(&c, r->mrsignerseam, sizeof(r->mrsignerseam));
	veil_cur_le64(&c, &r->seam_attributes);
	veil_cur_le64(&c, &r->td_attributes);
	veil_cur_le64(&c, &r->xfam);
	veil_cur_copy(&c, r->mrtd, sizeof(r->mrtd));
	veil_cur_copy(&c, r->mrconfigid, sizeof(r->mrconfigid));
	veil_cur_copy(&c, r->mrowner, sizeof(r->mrowner));
	veil_cur_copy(&c, r->mrownerconfig, sizeof(r->mrownerconfig));
	for (size_t i = 0; i < 4; i++)
		veil_cur_copy(&c, r->rtmr[i], sizeof(r->rtmr[i]));
	veil_cur_copy(&c, r->report_data, sizeof(r->report_data));
	if (size == VEIL_DCAP_TD15_BODY_SIZE) {
		r->is_tdx15 = true;
		veil_cur_copy(&c, r->tee_tcb_svn2, sizeof(r->tee_tcb_svn2));
		veil_cur_copy(&c, r->mrservicetd, sizeof(r->mrservicetd));
	}
	r->debug = (r->td_attributes & 1) != 0;
}

/* The QE part common to every version: QE report, its signature, the QE
 * authentication data and the type 5 certification data (the PCK chain),
 * filling all of `r`. */
static bool parse_qe_part(struct region *r, struct veil_dcap_quote *q, char *why, size_t cap)
{
	const uint8_t *p;
	uint16_t auth_size, cert_type;
	uint32_t cert_size;
	if (!field(r, VEIL_DCAP_SGX_REPORT_SIZE, "QE report", &q->qe_report_raw, why, cap))
		return false;
	decode_sgx_report(q->qe_report_raw, &q->qe_report);
	if (!field(r, 64, "QE report signature", &p, why, cap))
		return false;
	memcpy(q->qe_report_sig, p, 64);
	if (!field_le16(r, "QE authentication data size", &auth_size, why, cap) ||
	    !field(r, auth_size, "QE authentication data", &q->qe_auth_data, why, cap))
		return false;
	q->qe_auth_data_size = auth_size;
	size_t type_at = region_at(r);
	if (!field_le16(r, "certification data type", &cert_type, why, cap))
		return false;
	if (cert_type != VEIL_DCAP_CERT_DATA_PCK_CHAIN) {
		refuse(why, cap,
		       "certification data type %u at offset %zu is not supported (only 5, the "
		       "PCK certificate chain)",
		       cert_type, type_at);
		return false;
	}
	if (!field_le32(r, "certification data size", &cert_size, why, cap) ||
	    !field(r, cert_size, "certification data", &q->pck_chain_pem, why, cap))
		return false;
	q->pck_chain_pem_size = cert_size;
	return nothing_left(r, "certification data", why, cap);
}

int veil_dcap_parse(const uint8_t *quote, size_t n, struct veil_dcap_quote *out, char *why,
		    size_t cap)
{
	struct veil_dcap_quote q;
	struct region all, head, sig, qe;
	const uint8_t *p, *body;
	memset(&q, 0, sizeof(q));
	veil_cur_init(&all.cur, quote, n);
	all.base = 0;

	if (!sub_region(&all, VEIL_DCAP_HEADER_SIZE, "header", &head, why, cap))
		return VEIL_EINVAL;
	veil_cur_le16(&head.cur, &q.version);
	veil_cur_le16(&head.cur, &q.att_key_type);
	veil_cur_le32(&head.cur, &q.tee_type);
	veil_cur_le16(&head.cur, &q.qe_svn);
	veil_cur_le16(&head.cur, &q.pce_svn);
	veil_cur_copy(&head.cur, q.qe_vendor_id, sizeof(q.qe_vendor_id));
	veil_cur_copy(&head.cur, q.user_data, sizeof(q.user_data));
	if (!veil_cur_done(&head.cur))
		return refuse(why, cap, "header: internal layout error");
	if (q.version < 3 || q.version > 5)
		return refuse(why, cap, "quote version %u at offset 0 is not supported (3, 4 or 5)",
			      q.version);
	if (q.att_key_type != VEIL_DCAP_ATT_KEY_TYPE_ECDSA_P256)
		return refuse(why, cap,
			      "attestation key type %u at offset 2 is not ECDSA-256-with-P-256 (2)",
			      q.att_key_type);
	uint32_t want_tee = q.version == 3 ? VEIL_DCAP_TEE_SGX : VEIL_DCAP_TEE_TDX;
	if (q.tee_type != want_tee)
		return refuse(why, cap,
			      "tee type 0x%x at offset 4 is wrong for a version %u quote "
			      "(expected 0x%02x, %s)",
			      q.tee_type, q.version, want_tee, q.version == 3 ? "SGX" : "TDX");

	size_t body_size = VEIL_DCAP_SGX_REPORT_SIZE;
	if (q.version == 4) {
		q.body_type = 2;
		body_size = VEIL_DCAP_TD10_BODY_SIZE;
	} else if (q.version == 5) {
		uint32_t declared;
		if (!field_le16(&all, "body type", &q.body_type, why, cap) ||
		    !field_le32(&all, "body size", &declared, why, cap))
			return VEIL_EINVAL;
		if (q.body_type == 2)
			body_size = VEIL_DCAP_TD10_BODY_SIZE;
		else if (q.body_type == 3)
			body_size = VEIL_DCAP_TD15_BODY_SIZE;
		else
			return refuse(why, cap,
				      "body type %u at offset 48 is not supported (2 = TDX 1.0, "
				      "3 = TDX 1.5)",
				      q.body_type);
		if (declared != body_size)
			return refuse(why, cap,
				      "body size %u at offset 50 is wrong for body type %u (%zu)",
				      declared, q.body_type, body_size);
	}
	if (!field(&all, body_size, q.version == 3 ? "SGX report body" : "TD report body", &body,
		   why, cap))
		return VEIL_EINVAL;
	if (q.version == 3)
		decode_sgx_report(body, &q.sgx);
	else
		decode_td_report(body, body_size, &q.td);
	if (!veil_cur_span(&all.cur, 0, &q.signed_data, &q.signed_size))
		return refuse(why, cap, "quote: internal layout error");

	uint32_t sig_size;
	if (!field_le32(&all, "signature data length", &sig_size, why, cap) ||
	    !sub_region(&all, sig_size, "signature data", &sig, why, cap))
		return VEIL_EINVAL;
	q.quote_size = region_at(&all);
	if (!field(&sig, 64, "quote signature", &p, why, cap))
		return VEIL_EINVAL;
	memcpy(q.signature, p, 64);
	if (!field(&sig, 64, "attestation key", &p, why, cap))
		return VEIL_EINVAL;
	memcpy(q.att_key, p, 64);

	if (q.version == 3) {
		if (!parse_qe_part(&sig, &q, why, cap))
			return VEIL_EINVAL;
	} else {
		uint16_t type;
		uint32_t size;
		size_t type_at = region_at(&sig);
		if (!field_le16(&sig, "certification data type", &type, why, cap))
			return VEIL_EINVAL;
		if (type != VEIL_DCAP_CERT_DATA_QE_REPORT)
			return refuse(why, cap,
				      "certification data type %u at offset %zu is not supported "
				      "(a version %u quote needs 6, QE report certification data)",
				      type, type_at, q.version);
		if (!field_le32(&sig, "certification data size", &size, why, cap) ||
		    !sub_region(&sig, size, "certification data", &qe, why, cap) ||
		    !parse_qe_part(&qe, &q, why, cap) ||
		    !nothing_left(&sig, "QE report certification data", why, cap))
			return VEIL_EINVAL;
	}
	*out = q;
	return 0;
}
