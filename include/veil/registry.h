/* Registry push and pull over the OCI distribution API (src/image/registry.c).
 *
 * An image on disk is an OCI image layout folder (oci-layout, index.json,
 * blobs/sha256/...); an image in a registry is named by a reference:
 *   docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX]   or   HOST[:PORT]/REPO[:TAG]
 * (a first component without '.' or ':' and not "localhost" is a Docker Hub
 * name, as docker and podman read it). No tag and no digest means ":latest".
 *
 * Transport: HTTPS with the peer verified against the system CA store
 * ($SSL_CERT_FILE / $SSL_CERT_DIR override it); plain HTTP and unverified TLS
 * only for a registry named in `insecure` by its exact HOST[:PORT].
 * Credentials: `credentials_file`, else $VEIL_REGISTRY_AUTH, else the entry
 * for the registry contacted (after the mirror map) in `auth_file` alone if
 * given, else in the first of $REGISTRY_AUTH_FILE,
 * ${XDG_RUNTIME_DIR}/containers/auth.json and ~/.docker/config.json that has
 * one. They are sent as HTTP Basic or exchanged for a Bearer token at the
 * realm the registry's WWW-Authenticate names (HTTPS only, unless that host
 * is insecure), and appear in no message.
 *
 * Ownership: the options point at strings the caller owns for the call. */
#ifndef VEIL_REGISTRY_H
#define VEIL_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "veil/common.h"

/* A registry answered by another: every reference whose HOST[:PORT] is
 * exactly `from` is sent to `to` (pushes and pulls alike), like a
 * containers-registries.conf [[registry]] with prefix = from, location = to. */
struct veil_registry_mirror {
	const char *from; /* HOST[:PORT] as written in references */
	const char *to;   /* HOST[:PORT] contacted instead */
};

/* Filled by push and pull when the options point at one (may be NULL). */
struct veil_registry_stats {
	size_t blobs_sent;    /* push: blobs uploaded; pull: blobs downloaded */
	size_t blobs_present; /* push: already in the registry; pull: already in the layout */
	size_t blobs_mounted; /* push: linked from mount_from, not sent */
	uint64_t bytes_sent;  /* bytes of blobs uploaded or downloaded */
	size_t requests;      /* HTTP requests made, token requests included */
};

struct veil_registry_opts {
	/* an auth file (containers-auth.json / docker config.json format) to
	 * read instead of the default list; NULL: the default list */
	const char *auth_file;
	/* a file holding "USER:PASSWORD" (one line), the --registry-auth flag;
	 * NULL: $VEIL_REGISTRY_AUTH (same form) if set, else the auth files */
	const char *credentials_file;
	/* HOST[:PORT] names allowed plain HTTP and unverified TLS */
	const char *const *insecure;
	size_t insecure_count;
	const struct veil_registry_mirror *mirrors;
	size_t mirror_count;
	/* push: a repository of the same registry that may hold the blobs (the
	 * base image's): a blob it has is mounted (linked), not sent; NULL: none */
	const char *mount_from;
	int progress; /* progress of large blobs on stderr (when it is a TTY) */
	int verbose;  /* one line per HTTP request on stderr (method, path, status) */
	struct veil_registry_stats *stats;
};

#define VEIL_DIGEST_MAX 72 /* "sha256:" + 64 hex digits + NUL, with room */
#define VEIL_MANIFEST_MAX ((size_t)4 << 20)

/* Pushes the image that layout_dir's index.json names tag_in_layout (its
 * org.opencontainers.image.ref.name annotation; NULL: the only image) to ref.
 * Blobs the registry has are not sent again. digest_out (optional) receives
 * the pushed manifest's digest "sha256:HEX". 0 or a veil_err. */
int veil_image_push(const char *layout_dir, const char *tag_in_layout, const char *ref,
		    const struct veil_registry_opts *o, char digest_out[VEIL_DIGEST_MAX],
		    struct veil_diags *d) VEIL_MUST_CHECK;

/* Pulls ref (an index or manifest list: its linux/amd64 image) into the OCI
 * layout layout_dir (created if missing; other images in it are kept), named
 * tag_in_layout (NULL: the reference's tag, or "latest"). Every blob is
 * checked against its digest and size while it is written; the index.json
 * naming the image is written last, atomically, so the layout never names a
 * blob that is not there. digest_out (optional): the manifest's digest. */
int veil_image_pull_digest(const char *ref, const char *layout_dir, const char *tag_in_layout,
			   const struct veil_registry_opts *o, char digest_out[VEIL_DIGEST_MAX],
			   struct veil_diags *d) VEIL_MUST_CHECK;
int veil_image_pull(const char *ref, const char *layout_dir, const char *tag_in_layout,
		    const struct veil_registry_opts *o, struct veil_diags *d) VEIL_MUST_CHECK;

/* --- parsers of untrusted bytes, exposed for the unit tests and fuzzers --- */

/* A parsed reference; strings are NUL-terminated inside the struct. */
struct veil_image_ref {
	char host[256]; /* as written ("docker.io" for Docker Hub names) */
	char repo[256];
	char tag[129]; /* "" when a digest is given */
	char digest[VEIL_DIGEST_MAX];
};
int veil_image_ref_parse(const char *s, struct veil_image_ref *out,
			 struct veil_diags *d) VEIL_MUST_CHECK;

/* One WWW-Authenticate challenge: scheme "Basic" or "Bearer" and its
 * parameters (empty strings when absent). */
struct veil_auth_challenge {
	char scheme[16];
	char realm[1024];
	char service[256];
	char scope[512];
};
/* 0 or VEIL_EINVAL (not a challenge veil understands). */
int veil_auth_challenge_parse(const char *header, struct veil_auth_challenge *out) VEIL_MUST_CHECK;

/* A descriptor from a manifest or index. */
struct veil_descriptor {
	char media_type[128];
	char digest[VEIL_DIGEST_MAX];
	uint64_t size;
	/* informative fields; empty when absent or too long to be one veil looks for */
	char os[32], arch[32]; /* index entries: platform */
	char ref_name[256];    /* index.json: org.opencontainers.image.ref.name */
};
/* A manifest (config + layers) or an index (manifests). Owns `items`. */
struct veil_manifest_info {
	int is_index;
	char media_type[128];
	struct veil_descriptor config;
	struct veil_descriptor *items; /* layers, or an index's manifests */
	size_t count;
};
#define VEIL_MANIFEST_MAX_ITEMS 1024
/* Parses JSON manifest bytes (at most VEIL_MANIFEST_MAX); content_type
 * (optional) is the media type the registry or the layout gave. */
int veil_manifest_parse(const char *data, size_t size, const char *content_type,
			struct veil_manifest_info *out, struct veil_diags *d) VEIL_MUST_CHECK;
void veil_manifest_info_free(struct veil_manifest_info *m);

#endif
