/* The whole image's measurement record (format in include/veil/image_record.h):
 * the root file system the image's layers make, flattened in order as a
 * container runtime does (OCI image-spec "Applying changesets": whiteouts
 * .wh.NAME and opaque folders .wh..wh..opq hide what lower layers hold,
 * hard links resolved, later layers win), every entry hashed from the layer
 * blobs themselves (never from the builder's sources). */
#include <archive.h>
#include <archive_entry.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "oci.h"
#include "veil/image_record.h"

struct rootfs_entry {
	char *path;
	char *target; /* a link's */
	char kind;    /* d, f, l */
	int dead;     /* hidden by a later layer */
	unsigned mode;
	size_t layer;
	uint64_t size;
	uint8_t sha256[VEIL_SHA256_SIZE];
};

struct rootfs {
	struct rootfs_entry *e;
	size_t count, cap;
	size_t *slots; /* open addressing: index + 1; 0 empty */
	size_t nslots;
	const char *const *exclude;
	size_t exclude_count;
	struct veil_diags *d;
};

static uint64_t path_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct rootfs_entry *lookup(struct rootfs *fs, const char *path)
{
	if (!fs->nslots)
		return NULL;
	for (size_t i = path_hash(path) & (fs->nslots - 1);; i = (i + 1) & (fs->nslots - 1)) {
		if (!fs->slots[i])
			return NULL;
		if (!strcmp(fs->e[fs->slots[i] - 1].path, path))
			return &fs->e[fs->slots[i] - 1];
	}
}

static int rehash(struct rootfs *fs, size_t nslots)
{
	size_t *s = calloc(nslots, sizeof(*s));
	if (!s)
		return VEIL_ENOMEM;
	free(fs->slots);
	fs->slots = s;
	fs->nslots = nslots;
	for (size_t k = 0; k < fs->count; k++) {
		size_t i = path_hash(fs->e[k].path) & (nslots - 1);
		while (s[i])
			i = (i + 1) & (nslots - 1);
		s[i] = k + 1;
	}
	return 0;
}

/* the live or dead entry at path, made when absent (as a dead one) */
static struct rootfs_entry *slot_for(struct rootfs *fs, const char *path)
{
	struct rootfs_entry *e = lookup(fs, path);
	if (e)
		return e;
	if (fs->count == fs->cap) {
		size_t cap = fs->cap ? 2 * fs->cap : 1024;
		struct rootfs_entry *n = realloc(fs->e, cap * sizeof(*n));
		if (!n)
			return NULL;
		fs->e = n;
		fs->cap = cap;
	}
	if (2 * (fs->count + 1) > fs->nslots && rehash(fs, fs->nslots ? 2 * fs->nslots : 4096))
		return NULL;
	e = &fs->e[fs->count];
	memset(e, 0, sizeof(*e));
	if (!(e->path = strdup(path)))
		return NULL;
	e->dead = 1;
	size_t i = path_hash(path) & (fs->nslots - 1);
	while (fs->slots[i])
		i = (i + 1) & (fs->nslots - 1);
	fs->slots[i] = ++fs->count;
	return e;
}

static int under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	if (!strcmp(dir, "/"))
		return path[0] == '/' && path[1];
	return !strncmp(path, dir, n) && path[n] == '/';
}

/* hides dir's contents (below_layer: only what lower layers put there) */
static void hide_under(struct rootfs *fs, const char *dir, size_t below_layer)
{
	for (size_t i = 0; i < fs->count; i++)
		if (!fs->e[i].dead && fs->e[i].layer < below_layer && under(fs->e[i].path, dir))
			fs->e[i].dead = 1;
}

static int excluded(const struct rootfs *fs, const char *path)
{
	for (size_t i = 0; i < fs->exclude_count; i++)
		if (!strcmp(path, fs->exclude[i]) || under(path, fs->exclude[i]))
			return 1;
	return 0;
}

/* A tar member's name as an absolute normal path in out ("/" for the root);
 * NULL for a name that climbs out or is too long. */
static char *normal_path(const char *name, char *out, size_t cap)
{
	size_t k = 0;
	out[k++] = '/';
	for (const char *p = name; *p;) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (!n)
			break;
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return NULL;
		if (!(n == 1 && p[0] == '.')) {
			if (k > 1)
				out[k++] = '/';
			if (k + n + 1 > cap)
				return NULL;
			memcpy(out + k, p, n);
			k += n;
		}
		p += n;
	}
	out[k] = '\0';
	return out;
}

static int excluded(const struct rootfs *fs, const char *path);

/* every folder above path exists as a folder (made 0755 when absent), up to
 * the first excluded one: an excluded entry's folders are still the
 * image's (the runtime makes them when it extracts the layer) */
static int make_parents(struct rootfs *fs, const char *path, size_t layer)
{
	char p[VEIL_IMAGE_RECORD_MAX_PATH + 1];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		if (excluded(fs, p))
			return 0;
		struct rootfs_entry *e = slot_for(fs, p);
		if (!e)
			return VEIL_ENOMEM;
		if (!e->dead && e->kind != VEIL_IMAGE_DIR) {
			veil_diag(fs->d, "image: '%s' lies under '%s', which is not a folder", path,
				  p);
			return VEIL_EINVAL;
		}
		if (e->dead) {
			free(e->target);
			*e = (struct rootfs_entry){
			    .path = e->path, .kind = VEIL_IMAGE_DIR, .mode = 0755, .layer = layer};
		}
		*s = '/';
	}
	return 0;
}

/* puts an entry at path, as a layer above everything there replaces it */
static int put(struct rootfs *fs, const char *path, const struct rootfs_entry *v, size_t layer)
{
	int rc = strcmp(path, "/") ? make_parents(fs, path, layer) : 0;
	struct rootfs_entry *e = rc ? NULL : slot_for(fs, path);
	if (rc || !e)
		return rc ? rc : VEIL_ENOMEM;
	if (!e->dead && e->kind == VEIL_IMAGE_DIR && v->kind != VEIL_IMAGE_DIR)
		hide_under(fs, path, (size_t)-1);
	char *keep = e->path;
	free(e->target);
	*e = *v;
	e->path = keep;
	e->layer = layer;
	e->dead = 0;
	return 0;
}

static int hash_data(struct archive *a, uint8_t out[static VEIL_SHA256_SIZE], uint64_t *size)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const void *buf;
	size_t n;
	la_int64_t off;
	unsigned hl = 0;
	int r = ARCHIVE_FATAL, ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	*size = 0;
	while (ok && (r = archive_read_data_block(a, &buf, &n, &off)) == ARCHIVE_OK) {
		ok = EVP_DigestUpdate(ctx, buf, n);
		*size += n;
	}
	ok = ok && r == ARCHIVE_EOF && EVP_DigestFinal_ex(ctx, out, &hl);
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : VEIL_EIO;
}

static int read_layer_locked(struct rootfs *fs, const char *layout, const char *digest,
			     size_t layer);

/* libarchive converts names through the locale's character set (ASCII:
 * veil never calls setlocale()); in C.UTF-8 a UTF-8 name passes unchanged,
 * as in layer.c */
static int read_layer(struct rootfs *fs, const char *layout, const char *digest, size_t layer)
{
	locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	if (!utf8) {
		veil_diag(fs->d, "image: the C.UTF-8 locale is not available");
		return VEIL_EIO;
	}
	locale_t old = uselocale(utf8);
	int rc = read_layer_locked(fs, layout, digest, layer);
	uselocale(old);
	freelocale(utf8);
	return rc;
}

static int read_layer_locked(struct rootfs *fs, const char *layout, const char *digest,
			     size_t layer)
{
	char *blob = NULL;
	char path[VEIL_IMAGE_RECORD_MAX_PATH + 1], link[VEIL_IMAGE_RECORD_MAX_PATH + 1];
	if (asprintf(&blob, "%s/blobs/sha256/%s", layout, digest + 7) < 0)
		return VEIL_ENOMEM;
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	int rc = a ? 0 : VEIL_ENOMEM, r;
	if (!rc && (archive_read_support_filter_all(a) != ARCHIVE_OK ||
		    archive_read_support_format_tar(a) != ARCHIVE_OK ||
		    archive_read_open_filename(a, blob, 1 << 20) != ARCHIVE_OK)) {
		veil_diag(fs->d, "image: cannot read layer %s: %s", digest,
			  archive_error_string(a));
		rc = VEIL_EIO;
	}
	while (!rc && (r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(ae);
		if (!name || !normal_path(name, path, sizeof(path))) {
			veil_diag(fs->d, "image: layer %s holds the name '%s', outside the root",
				  digest, name ? name : "");
			rc = VEIL_EINVAL;
			break;
		}
		char *base = strrchr(path, '/') + 1;
		if (!strncmp(base, ".wh.", 4)) {
			/* the folder the whiteout is in */
			base[-1] = '\0';
			const char *dir = path[0] ? path : "/";
			if (!strcmp(base, ".wh..wh..opq")) {
				hide_under(fs, dir, layer);
			} else {
				/* path without the ".wh." (never longer than path) */
				char hidden[VEIL_IMAGE_RECORD_MAX_PATH + 1];
				size_t pl = strlen(path);
				memcpy(hidden, path, pl);
				hidden[pl] = '/';
				memcpy(hidden + pl + 1, base + 4, strlen(base + 4) + 1);
				struct rootfs_entry *e = lookup(fs, hidden);
				if (e && e->layer < layer)
					e->dead = 1;
				hide_under(fs, hidden, layer);
			}
			continue;
		}
		if (excluded(fs, path)) {
			if ((rc = make_parents(fs, path, layer)))
				break;
			continue;
		}
		struct rootfs_entry v = {.mode = archive_entry_perm(ae) & 07777};
		const char *hl = archive_entry_hardlink(ae);
		if (hl) {
			struct rootfs_entry *t =
			    normal_path(hl, link, sizeof(link)) ? lookup(fs, link) : NULL;
			if (!t || t->dead || t->kind != VEIL_IMAGE_FILE) {
				veil_diag(fs->d,
					  "image: layer %s: hard link '%s' to '%s', not a file",
					  digest, name, hl);
				rc = VEIL_EINVAL;
				break;
			}
			v = *t;
			v.target = NULL;
		} else {
			switch (archive_entry_filetype(ae)) {
			case AE_IFDIR:
				v.kind = VEIL_IMAGE_DIR;
				break;
			case AE_IFREG:
				v.kind = VEIL_IMAGE_FILE;
				if ((rc = hash_data(a, v.sha256, &v.size)))
					veil_diag(fs->d, "image: cannot read '%s' in layer %s: %s",
						  name, digest, archive_error_string(a));
				break;
			case AE_IFLNK:
				v.kind = VEIL_IMAGE_LINK;
				v.mode = 0777;
				if (!archive_entry_symlink(ae) ||
				    !(v.target = strdup(archive_entry_symlink(ae))))
					rc = VEIL_ENOMEM;
				break;
			default:
				veil_diag(
				    fs->d,
				    "image: layer %s holds '%s', a device or FIFO outside the "
				    "excluded folders, which the measurement cannot hold",
				    digest, name);
				rc = VEIL_EINVAL;
			}
		}
		if (!rc && (rc = put(fs, path, &v, layer)))
			free(v.target);
		else if (rc)
			free(v.target);
	}
	if (!rc && r != ARCHIVE_EOF) {
		veil_diag(fs->d, "image: cannot read layer %s: %s", digest,
			  archive_error_string(a));
		rc = VEIL_EIO;
	}
	if (a)
		archive_read_free(a);
	free(blob);
	return rc;
}

static int by_entry_path(const void *a, const void *b)
{
	return strcmp((*(struct rootfs_entry *const *)a)->path,
		      (*(struct rootfs_entry *const *)b)->path);
}

struct child {
	size_t parent; /* index into the sorted live entries */
	const char *name;
};

static int by_parent_name(const void *a, const void *b)
{
	const struct child *x = a, *y = b;
	if (x->parent != y->parent)
		return x->parent < y->parent ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int emit(struct veil_buf *out, struct rootfs_entry *const *live, size_t n,
		const char *const *exclude, size_t exclude_count)
{
	size_t xi = 0;
	veil_buf_puts(out, VEIL_IMAGE_RECORD_MAGIC);
	for (size_t i = 0; i <= n; i++) {
		/* the exclusions (sorted) merged in path order */
		while (xi < exclude_count && (i == n || strcmp(exclude[xi], live[i]->path) < 0)) {
			veil_buf_puts(out, "x ");
			veil_image_record_escape(out, exclude[xi], strlen(exclude[xi]));
			veil_buf_puts(out, "\n");
			xi++;
		}
		if (i == n)
			break;
		const struct rootfs_entry *e = live[i];
		char hex[2 * VEIL_SHA256_SIZE + 1];
		veil_hex(e->sha256, VEIL_SHA256_SIZE, hex);
		if (e->kind == VEIL_IMAGE_DIR) {
			veil_buf_printf(out, "d %04o %s ", e->mode, hex);
		} else if (e->kind == VEIL_IMAGE_FILE) {
			veil_buf_printf(out, "f %04o %llu %s ", e->mode,
					(unsigned long long)e->size, hex);
		} else {
			veil_buf_puts(out, "l ");
			veil_image_record_escape(out, e->target, strlen(e->target));
			veil_buf_puts(out, " ");
		}
		veil_image_record_escape(out, e->path, strlen(e->path));
		veil_buf_puts(out, "\n");
	}
	return out->failed ? VEIL_ENOMEM : 0;
}

static int by_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int oci_rootfs_record(const char *layout, const json_t *layers, const char *const *extra_exclude,
		      size_t extra_count, struct veil_buf *out, struct veil_diags *d)
{
	static const char *const fixed[] = VEIL_IMAGE_RECORD_EXCLUDED;
	size_t nfixed = VEIL_ARRAY_LEN(fixed), nx = nfixed + 1 + extra_count;
	const char **exclude = calloc(nx, sizeof(*exclude));
	struct rootfs fs = {.d = d};
	struct rootfs_entry **live = NULL;
	struct child *kids = NULL;
	const char **names = NULL;
	int rc = exclude ? 0 : VEIL_ENOMEM;
	if (rc)
		return rc;
	char *normal = calloc(extra_count + 1, VEIL_IMAGE_RECORD_MAX_PATH + 1);
	if (!normal) {
		free(exclude);
		return VEIL_ENOMEM;
	}
	memcpy(exclude, fixed, sizeof(fixed));
	exclude[nfixed] = VEIL_IMAGE_RECORD_PATH;
	/* as a record path: absolute, no "//", "." or trailing "/" */
	for (size_t i = 0; i < extra_count; i++) {
		char *p = normal + i * (VEIL_IMAGE_RECORD_MAX_PATH + 1);
		if (!normal_path(extra_exclude[i], p, VEIL_IMAGE_RECORD_MAX_PATH + 1) ||
		    !strcmp(p, "/")) {
			veil_diag(d, "image: cannot exclude '%s' from the measurement",
				  extra_exclude[i]);
			free(normal);
			free(exclude);
			return VEIL_EINVAL;
		}
		exclude[nfixed + 1 + i] = p;
	}
	qsort(exclude, nx, sizeof(*exclude), by_str);
	size_t k = 0; /* duplicates once */
	for (size_t i = 0; i < nx; i++)
		if (!k || strcmp(exclude[k - 1], exclude[i]))
			exclude[k++] = exclude[i];
	nx = k;
	fs.exclude = exclude;
	fs.exclude_count = nx;

	struct rootfs_entry rootdir = {.kind = VEIL_IMAGE_DIR, .mode = 0755};
	if ((rc = put(&fs, "/", &rootdir, 0)))
		goto out;
	size_t i;
	json_t *l;
	json_array_foreach(layers, i, l)
	{
		const char *digest = json_string_value(json_object_get(l, "digest"));
		if (!digest || !oci_digest_valid(digest)) {
			veil_diag(d, "image: layer %zu has no valid digest", i);
			rc = VEIL_EINVAL;
			goto out;
		}
		if ((rc = read_layer(&fs, layout, digest, i + 1)))
			goto out;
	}
	/* the record's own layer makes its folders 0755, as the runtime's does */
	char dir[] = VEIL_IMAGE_RECORD_PATH;
	*strrchr(dir, '/') = '\0';
	for (char *s = dir + 1;; s++) {
		char c = *s;
		if (c && c != '/')
			continue;
		*s = '\0';
		struct rootfs_entry v = {.kind = VEIL_IMAGE_DIR, .mode = 0755};
		struct rootfs_entry *e = lookup(&fs, dir);
		if (e && !e->dead && e->kind == VEIL_IMAGE_DIR)
			e->mode = 0755;
		else if ((rc = put(&fs, dir, &v, (size_t)-1)))
			goto out;
		*s = c;
		if (!c)
			break;
	}
	size_t n = 0;
	live = calloc(fs.count + 1, sizeof(*live));
	kids = calloc(fs.count + 1, sizeof(*kids));
	names = calloc(fs.count + 1, sizeof(*names));
	rc = VEIL_ENOMEM;
	if (!live || !kids || !names)
		goto out;
	for (size_t j = 0; j < fs.count; j++)
		if (!fs.e[j].dead)
			live[n++] = &fs.e[j];
	qsort(live, n, sizeof(*live), by_entry_path);
	/* each folder's listing: its children grouped by parent */
	size_t nk = 0;
	for (size_t j = 1; j < n; j++) {
		char *slash = strrchr(live[j]->path, '/');
		char parent[VEIL_IMAGE_RECORD_MAX_PATH + 1];
		size_t pl = slash == live[j]->path ? 1 : (size_t)(slash - live[j]->path);
		memcpy(parent, live[j]->path, pl);
		parent[pl] = '\0';
		struct rootfs_entry key = {.path = parent}, *kp = &key;
		struct rootfs_entry **p = bsearch(&kp, live, n, sizeof(*live), by_entry_path);
		if (!p) { /* make_parents() made every parent */
			veil_diag(d, "image: '%s' has no folder", live[j]->path);
			rc = VEIL_EINVAL;
			goto out;
		}
		kids[nk++] = (struct child){(size_t)(p - live), slash + 1};
	}
	qsort(kids, nk, sizeof(*kids), by_parent_name);
	for (size_t j = 0; j < n; j++)
		if (live[j]->kind == VEIL_IMAGE_DIR)
			veil_image_listing_sha256(NULL, 0, live[j]->sha256);
	for (size_t a = 0, b; a < nk; a = b) {
		size_t m = 0;
		for (b = a; b < nk && kids[b].parent == kids[a].parent; b++)
			names[m++] = kids[b].name;
		veil_image_listing_sha256(names, m, live[kids[a].parent]->sha256);
	}
	rc = emit(out, live, n, exclude, nx);
out:
	for (size_t j = 0; j < fs.count; j++) {
		free(fs.e[j].path);
		free(fs.e[j].target);
	}
	free(fs.e);
	free(fs.slots);
	free(live);
	free(kids);
	free(names);
	free(exclude);
	free(normal);
	return rc;
}

int oci_measurement_layer(const char *layout, const json_t *layers,
			  const struct veil_measurement *m, time_t mtime,
			  char diff_id[static VEIL_DIGEST_SIZE], struct oci_desc *out,
			  char root_hex[static 2 * VEIL_SHA256_SIZE + 1], struct veil_diags *d)
{
	struct veil_buf rec;
	struct oci_layer *l = NULL;
	uint8_t root[VEIL_SHA256_SIZE];
	char dir[] = VEIL_IMAGE_RECORD_PATH;
	veil_buf_init(&rec, 0);
	int rc = oci_rootfs_record(layout, layers, (const char *const *)m->exclude,
				   m->exclude_count, &rec, d);
	if (!rc)
		rc = veil_sha256(rec.data, rec.size, root);
	if (!rc)
		rc = oci_layer_open(&l, layout, mtime, d);
	/* its folders, each once, parents first ("/etc", "/etc/veil") */
	*strrchr(dir, '/') = '\0';
	for (char *s = dir + 1; !rc; s++) {
		char c = *s;
		if (c && c != '/')
			continue;
		*s = '\0';
		rc = oci_layer_add_dir(l, dir);
		*s = c;
		if (!c)
			break;
	}
	if (!rc)
		rc = oci_layer_add_bytes(l, VEIL_IMAGE_RECORD_PATH, rec.data, rec.size, 0644);
	veil_buf_free(&rec);
	if (rc) {
		if (l)
			oci_layer_abort(l);
		return rc;
	}
	if ((rc = oci_layer_close(l, diff_id, out)))
		return rc;
	veil_hex(root, sizeof(root), root_hex);
	return 0;
}
