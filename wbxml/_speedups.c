/*
 * wbxml._speedups: the fast paths of the WBXML encoder and decoder, in C.
 *
 * Encoding first; decoding (WBXML -> XML text for lxml's parser) further down.
 *
 * Why C. Encoding a 100-message Sync response in Python spends most of its
 * time asking lxml for tags and texts: each `.tag`, `.text`, `.tail` builds a
 * new Python string from the libxml2 node, and only walking the tree that way
 * costs about as much as pyactivesync's whole encoder (measured in issue 2's
 * notes). Here the libxml2 nodes under lxml's elements are read directly, as
 * lxml's public C-API allows (https://lxml.de/capi.html: the LxmlElement struct
 * and its _c_node), and the WBXML bytes are written into one buffer.
 *
 * Contract. encode(root) returns the same bytes as the Python encoder
 * (wbxml/encoder.py), or None for anything outside the common case: unknown
 * tags, attributes other than the raw marker, comments, processing
 * instructions, entity references, too deep a tree, content the Python encoder
 * refuses. The caller then runs the Python encoder, which raises the precise
 * error. So the errors and their messages exist in one place only, and the
 * tests check that both paths agree byte for byte (tests/wbxml/test_speedups.py).
 *
 * The tag table is handed over by the Python side (set_table), from
 * wbxml/tokens.py: there is one table of tokens in the project, not two.
 * Nothing here calls into libxml2; it only reads node fields.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "lxml-version.h"
#include "etree_defs.h"
#include "etree_api.h"

#define SWITCH_PAGE 0x00
#define END 0x01
#define STR_I 0x03
#define OPAQUE 0xC3
#define WITH_CONTENT 0x40

/* Same bound as encoder.MAX_DEPTH (checked there; deeper trees take the Python path). */
static int max_depth = 256;

/* ---- tag table: (namespace, name) -> page, token, is-binary ---------------- */

typedef struct {
    char *ns;      /* "AirSync:" */
    char *name;    /* "Sync" */
    size_t ns_len, name_len;
    unsigned char page, token, binary;
} tag_entry;

#define TABLE_SIZE 4096 /* power of two, > 2 x the ~900 tags of pages 0-25 */
static tag_entry *table[TABLE_SIZE];
static const char *raw_ns = NULL; /* "urn:x-eas-gateway:wbxml" */

static size_t hash_tag(const unsigned char *ns, const unsigned char *name, size_t *ns_len, size_t *name_len) {
    /* FNV-1a over namespace, a separator, name; also measures both strings. */
    size_t h = 1469598103934665603ULL;
    const unsigned char *p;
    for (p = ns; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    *ns_len = (size_t)(p - ns);
    h = (h ^ 0xFF) * 1099511628211ULL;
    for (p = name; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    *name_len = (size_t)(p - name);
    return h;
}

static const tag_entry *lookup(const xmlChar *ns, const xmlChar *name) {
    size_t ns_len, name_len;
    size_t i = hash_tag(ns, name, &ns_len, &name_len) & (TABLE_SIZE - 1);
    for (;;) {
        const tag_entry *e = table[i];
        if (e == NULL) return NULL;
        if (e->ns_len == ns_len && e->name_len == name_len && memcmp(e->name, name, name_len) == 0
            && memcmp(e->ns, ns, ns_len) == 0)
            return e;
        i = (i + 1) & (TABLE_SIZE - 1);
    }
}

static void clear_table(void) {
    for (size_t i = 0; i < TABLE_SIZE; i++) {
        if (table[i]) {
            PyMem_Free(table[i]->ns);
            PyMem_Free(table[i]->name);
            PyMem_Free(table[i]);
            table[i] = NULL;
        }
    }
}

static char *copy_string(const char *s, size_t n) {
    char *out = PyMem_Malloc(n + 1);
    if (out) {
        memcpy(out, s, n);
        out[n] = 0;
    }
    return out;
}

/* set_table(tags: dict[str, tuple[int, int, bool]], raw_namespace: str, max_depth: int)
 * tags: lxml tag "{AirSync:}Sync" -> (page, token, binary). */
static PyObject *set_table(PyObject *self, PyObject *args) {
    PyObject *tags;
    const char *raw;
    int depth;
    if (!PyArg_ParseTuple(args, "O!si", &PyDict_Type, &tags, &raw, &depth)) return NULL;
    if (PyDict_Size(tags) * 2 > TABLE_SIZE) {
        PyErr_SetString(PyExc_ValueError, "tag table too large");
        return NULL;
    }
    clear_table();
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(tags, &pos, &key, &value)) {
        Py_ssize_t len;
        const char *tag = PyUnicode_AsUTF8AndSize(key, &len);
        int page, token, binary;
        if (tag == NULL) goto fail;
        if (!PyArg_ParseTuple(value, "iip", &page, &token, &binary)) goto fail;
        const char *close = len > 0 && tag[0] == '{' ? memchr(tag, '}', (size_t)len) : NULL;
        if (close == NULL || page < 0 || page > 255 || token < 5 || token > 0x3F) {
            PyErr_Format(PyExc_ValueError, "bad tag table entry %R", key);
            goto fail;
        }
        tag_entry *e = PyMem_Calloc(1, sizeof(tag_entry));
        if (e == NULL) goto nomem;
        e->ns = copy_string(tag + 1, (size_t)(close - tag - 1));
        e->name = copy_string(close + 1, (size_t)(tag + len - close - 1));
        if (e->ns == NULL || e->name == NULL) {
            PyMem_Free(e->ns);
            PyMem_Free(e->name);
            PyMem_Free(e);
            goto nomem;
        }
        e->page = (unsigned char)page;
        e->token = (unsigned char)token;
        e->binary = (unsigned char)binary;
        size_t i = hash_tag((const unsigned char *)e->ns, (const unsigned char *)e->name, &e->ns_len, &e->name_len)
                   & (TABLE_SIZE - 1);
        while (table[i]) i = (i + 1) & (TABLE_SIZE - 1);
        table[i] = e;
    }
    char *raw_copy = copy_string(raw, strlen(raw));
    if (raw_copy == NULL) goto nomem;
    PyMem_Free((void *)raw_ns);
    raw_ns = raw_copy;
    max_depth = depth;
    Py_RETURN_NONE;
nomem:
    PyErr_NoMemory();
fail:
    clear_table();
    return NULL;
}

/* ---- output buffer ------------------------------------------------------- */

typedef struct {
    unsigned char *data;
    size_t len, cap;
    int page;            /* code page in force */
    PyObject *a2b_base64; /* binascii.a2b_base64, for raw-marked elements */
} writer;

/* Results of the writers. */
#define OK 0
#define DECLINE 1 /* not the common case: the Python encoder takes over */
#define FAILED -1 /* a Python exception is set (out of memory) */

static int reserve(writer *enc, size_t more) {
    if (enc->len + more <= enc->cap) return OK;
    size_t cap = enc->cap ? enc->cap : 4096;
    while (cap < enc->len + more) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return FAILED;
        }
        cap *= 2;
    }
    unsigned char *data = PyMem_Realloc(enc->data, cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    enc->data = data;
    enc->cap = cap;
    return OK;
}

#define PUT(enc, byte)                                         \
    do {                                                       \
        if ((enc)->len == (enc)->cap && reserve((enc), 1)) return FAILED; \
        (enc)->data[(enc)->len++] = (unsigned char)(byte);     \
    } while (0)

static int put_bytes(writer *enc, const void *src, size_t n) {
    if (reserve(enc, n)) return FAILED;
    memcpy(enc->data + enc->len, src, n);
    enc->len += n;
    return OK;
}

static int put_mb_u_int32(writer *enc, size_t value) {
    unsigned char tmp[10];
    int n = 0;
    if (value > 0xFFFFFFFFu) return DECLINE;
    tmp[n++] = value & 0x7F;
    value >>= 7;
    while (value) {
        tmp[n++] = 0x80 | (value & 0x7F);
        value >>= 7;
    }
    if (reserve(enc, (size_t)n)) return FAILED;
    while (n) enc->data[enc->len++] = tmp[--n];
    return OK;
}

/* ---- text: runs of text/CDATA nodes, as lxml's .text and .tail read them -- */

/* Length of the text run starting at *node; *node moves past it. */
static size_t run_length(xmlNode **node) {
    size_t n = 0;
    xmlNode *c = *node;
    while (c && (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)) {
        if (c->content) n += strlen((const char *)c->content);
        c = c->next;
    }
    *node = c;
    return n;
}

/* Append the text run [start, stop) to the buffer. */
static int put_run(writer *enc, xmlNode *start, xmlNode *stop) {
    for (xmlNode *c = start; c != stop; c = c->next)
        if (c->content && put_bytes(enc, c->content, strlen((const char *)c->content))) return FAILED;
    return OK;
}

/* STR_I <run> 00: the run cannot hold NUL (libxml2 strings end there). */
static int put_inline_run(writer *enc, xmlNode *start, xmlNode *stop) {
    PUT(enc, STR_I);
    if (put_run(enc, start, stop)) return FAILED;
    PUT(enc, 0);
    return OK;
}

/* ---- elements ------------------------------------------------------------ */

/* The raw marker (wbxml/__init__.py "Binary content"): 1 opaque, 2 string,
 * 0 none; DECLINE for any other attribute. */
static int raw_kind(xmlNode *el, int *kind) {
    *kind = 0;
    xmlAttr *attr = el->properties;
    if (attr == NULL) return OK;
    if (attr->next != NULL || attr->ns == NULL || raw_ns == NULL || strcmp((const char *)attr->ns->href, raw_ns) != 0
        || strcmp((const char *)attr->name, "raw") != 0)
        return DECLINE;
    xmlNode *value = attr->children;
    if (value == NULL || value->type != XML_TEXT_NODE || value->next != NULL || value->content == NULL) return DECLINE;
    if (strcmp((const char *)value->content, "opaque") == 0)
        *kind = 1;
    else if (strcmp((const char *)value->content, "string") == 0)
        *kind = 2;
    else
        return DECLINE;
    return OK;
}

/* A raw-marked leaf: its text is base64 of the exact content. */
static int write_raw(writer *enc, const tag_entry *e, xmlNode *text, int kind) {
    xmlNode *stop = text;
    size_t n = run_length(&stop);
    PyObject *b64 = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (b64 == NULL) return FAILED;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(b64);
    for (xmlNode *c = text; c != stop; c = c->next) {
        if (!c->content) continue;
        size_t len = strlen((const char *)c->content);
        memcpy(p, c->content, len);
        p += len;
    }
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char *)PyBytes_AS_STRING(b64))[i] >= 0x80) { /* not ASCII: the Python path says so */
            Py_DECREF(b64);
            return DECLINE;
        }
    }
    PyObject *payload = PyObject_CallOneArg(enc->a2b_base64, b64);
    Py_DECREF(b64);
    if (payload == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) return FAILED; /* binascii.Error is a ValueError */
        PyErr_Clear(); /* not base64: the Python path raises MalformedError */
        return DECLINE;
    }
    const char *data = PyBytes_AS_STRING(payload);
    size_t size = (size_t)PyBytes_GET_SIZE(payload);
    int result = OK;
    if (size == 0) { /* no content: a bare token, as devices send it */
        result = reserve(enc, 1);
        if (result == OK) enc->data[enc->len++] = e->token;
    } else if (kind == 2 && memchr(data, 0, size) != NULL) {
        result = DECLINE; /* NUL in an inline string: the Python path refuses it */
    } else if ((result = reserve(enc, 2)) == OK) {
        enc->data[enc->len++] = e->token | WITH_CONTENT;
        if (kind == 1) {
            enc->data[enc->len++] = OPAQUE;
            if ((result = put_mb_u_int32(enc, size)) == OK) result = put_bytes(enc, data, size);
        } else {
            enc->data[enc->len++] = STR_I;
            if ((result = put_bytes(enc, data, size)) == OK && (result = reserve(enc, 1)) == OK)
                enc->data[enc->len++] = 0;
        }
        if (result == OK && (result = reserve(enc, 1)) == OK) enc->data[enc->len++] = END;
    }
    Py_DECREF(payload);
    return result;
}

static int write_element(writer *enc, xmlNode *el, int depth) {
    if (el->type != XML_ELEMENT_NODE || el->ns == NULL || el->ns->href == NULL) return DECLINE;
    const tag_entry *e = lookup(el->ns->href, el->name);
    if (e == NULL) return DECLINE;
    if (e->page != enc->page) {
        if (reserve(enc, 2)) return FAILED;
        enc->data[enc->len++] = SWITCH_PAGE;
        enc->data[enc->len++] = e->page;
        enc->page = e->page;
    }
    int kind;
    if (raw_kind(el, &kind)) return DECLINE;

    xmlNode *text = el->children;
    xmlNode *child = text;
    size_t text_len = run_length(&child);
    /* Skip nothing else: lxml counts comments, PIs and entity references as
     * children; anything but an element after the text declines below. */
    if (child == NULL) { /* a leaf */
        if (kind) return write_raw(enc, e, text, kind);
        if (text_len == 0) {
            PUT(enc, e->token);
            return OK;
        }
        if (reserve(enc, 2)) return FAILED;
        enc->data[enc->len++] = e->token | WITH_CONTENT;
        if (e->binary) {
            enc->data[enc->len++] = OPAQUE;
            int r = put_mb_u_int32(enc, text_len);
            if (r) return r;
            if (put_run(enc, text, NULL)) return FAILED;
        } else {
            enc->data[enc->len++] = STR_I;
            if (put_run(enc, text, NULL)) return FAILED;
            PUT(enc, 0);
        }
        PUT(enc, END);
        return OK;
    }
    if (depth >= max_depth || kind) return DECLINE;
    PUT(enc, e->token | WITH_CONTENT);
    if (text_len && put_inline_run(enc, text, child)) return FAILED;
    while (child) {
        if (child->type != XML_ELEMENT_NODE) return DECLINE;
        int r = write_element(enc, child, depth + 1);
        if (r) return r;
        xmlNode *tail = child->next;
        child = tail;
        if (run_length(&child) && put_inline_run(enc, tail, child)) return FAILED;
    }
    PUT(enc, END);
    return OK;
}

static PyObject *element_type = NULL; /* lxml.etree._Element */
static PyObject *a2b_base64 = NULL;

/* encode(root) -> bytes | None */
static PyObject *encode(PyObject *self, PyObject *root) {
    if (raw_ns == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "wbxml._speedups.set_table() was not called");
        return NULL;
    }
    if (!PyObject_TypeCheck(root, (PyTypeObject *)element_type)) Py_RETURN_NONE;
    xmlNode *node = ((struct LxmlElement *)root)->_c_node;
    if (node == NULL) Py_RETURN_NONE;
    writer enc = {NULL, 0, 0, 0, a2b_base64};
    static const unsigned char header[] = {0x03, 0x01, 0x6A, 0x00};
    int r = put_bytes(&enc, header, sizeof header);
    if (r == OK) r = write_element(&enc, node, 0);
    PyObject *result;
    if (r == OK)
        result = PyBytes_FromStringAndSize((const char *)enc.data, (Py_ssize_t)enc.len);
    else if (r == DECLINE) {
        result = Py_None;
        Py_INCREF(result);
    } else
        result = NULL;
    PyMem_Free(enc.data);
    return result;
}

/* ==== decoding: WBXML -> XML text, which lxml's parser turns into the tree ====
 *
 * The same translation as wbxml/decoder.py's _Translator in its first
 * (optimistic) pass, for the documents phones send: UTF-8, tags with and
 * without content, SWITCH_PAGE anywhere, one STR_I or one OPAQUE per element.
 * Everything else declines (None) and the Python translator runs: string
 * tables in use (STR_T), ENTITY, other charsets, text beside child elements,
 * several strings in one element, every error and every exceeded limit. So
 * the output, when there is one, is byte for byte what the Python translator
 * writes (tests/wbxml/test_speedups.py holds them to that).
 */

typedef struct {
    char *open, *open_ns, *empty, *empty_ns, *close;
    Py_ssize_t open_len, open_ns_len, empty_len, empty_ns_len, close_len;
    int binary;
} dec_tag;

static dec_tag *dec_tags[256][64];
static char page_known[256];
static char *raw_decl = NULL; /* ' xmlns:wbxml="urn:x-eas-gateway:wbxml" wbxml:raw="' */
static Py_ssize_t raw_decl_len = 0;

static void clear_decode_table(void) {
    for (int p = 0; p < 256; p++) {
        page_known[p] = 0;
        for (int t = 0; t < 64; t++) {
            dec_tag *d = dec_tags[p][t];
            if (d == NULL) continue;
            PyMem_Free(d->open);
            PyMem_Free(d->open_ns);
            PyMem_Free(d->empty);
            PyMem_Free(d->empty_ns);
            PyMem_Free(d->close);
            PyMem_Free(d);
            dec_tags[p][t] = NULL;
        }
    }
    PyMem_Free(raw_decl);
    raw_decl = NULL;
}

static int copy_bytes(PyObject *src, char **dst, Py_ssize_t *len) {
    char *p;
    if (PyBytes_AsStringAndSize(src, &p, len) < 0) return -1;
    *dst = copy_string(p, (size_t)*len);
    if (*dst == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* set_decode_table(pages: list[list[tuple | None]], raw_decl: bytes): the
 * decoder's _TAGS rows (per page, per token: open, open with xmlns, empty,
 * empty with xmlns, (close, page), binary) and its _RAW_DECL. A page is known
 * when its row is not None. */
static PyObject *set_decode_table(PyObject *self, PyObject *args) {
    PyObject *pages, *decl;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &pages, &PyBytes_Type, &decl)) return NULL;
    if (PyList_GET_SIZE(pages) != 256) {
        PyErr_SetString(PyExc_ValueError, "expected 256 code page rows");
        return NULL;
    }
    clear_decode_table();
    for (int p = 0; p < 256; p++) {
        PyObject *row = PyList_GET_ITEM(pages, p);
        if (row == Py_None) continue;
        if (!PyList_Check(row) || PyList_GET_SIZE(row) != 64) {
            PyErr_SetString(PyExc_ValueError, "expected 64 tokens per code page");
            goto fail;
        }
        page_known[p] = 1;
        for (int t = 0; t < 64; t++) {
            PyObject *entry = PyList_GET_ITEM(row, t), *open, *open_ns, *empty, *empty_ns, *close_page, *close;
            int binary, close_of;
            if (entry == Py_None) continue;
            if (!PyArg_ParseTuple(entry, "SSSSOp", &open, &open_ns, &empty, &empty_ns, &close_page, &binary)
                || !PyArg_ParseTuple(close_page, "Si", &close, &close_of))
                goto fail;
            dec_tag *d = PyMem_Calloc(1, sizeof(dec_tag));
            if (d == NULL) {
                PyErr_NoMemory();
                goto fail;
            }
            dec_tags[p][t] = d;
            d->binary = binary;
            if (copy_bytes(open, &d->open, &d->open_len) || copy_bytes(open_ns, &d->open_ns, &d->open_ns_len)
                || copy_bytes(empty, &d->empty, &d->empty_len) || copy_bytes(empty_ns, &d->empty_ns, &d->empty_ns_len)
                || copy_bytes(close, &d->close, &d->close_len))
                goto fail;
        }
    }
    if (copy_bytes(decl, &raw_decl, &raw_decl_len)) goto fail;
    Py_RETURN_NONE;
fail:
    clear_decode_table();
    return NULL;
}

/* A WBXML multi-byte integer (at most 5 bytes, 32 bits); 0, or DECLINE where
 * the Python reader raises. */
static int read_mb(const unsigned char *data, size_t size, size_t *pos, size_t *value) {
    size_t v = 0;
    for (int i = 0; i < 5; i++) {
        if (*pos + (size_t)i >= size) return DECLINE;
        unsigned char byte = data[*pos + (size_t)i];
        v = (v << 7) | (byte & 0x7F);
        if (!(byte & 0x80)) {
            if (v > 0xFFFFFFFFu) return DECLINE;
            *value = v;
            *pos += (size_t)i + 1;
            return OK;
        }
    }
    return DECLINE;
}

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64 as binascii.b2a_base64(data, newline=False) writes it. */
static int put_base64(writer *w, const unsigned char *src, size_t n) {
    if (reserve(w, (n + 2) / 3 * 4)) return FAILED;
    unsigned char *out = w->data + w->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)src[i] << 16 | (unsigned)src[i + 1] << 8 | src[i + 2];
        *out++ = b64_alphabet[v >> 18];
        *out++ = b64_alphabet[(v >> 12) & 63];
        *out++ = b64_alphabet[(v >> 6) & 63];
        *out++ = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)src[i] << 16;
        *out++ = b64_alphabet[v >> 18];
        *out++ = b64_alphabet[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        unsigned v = (unsigned)src[i] << 16 | (unsigned)src[i + 1] << 8;
        *out++ = b64_alphabet[v >> 18];
        *out++ = b64_alphabet[(v >> 12) & 63];
        *out++ = b64_alphabet[(v >> 6) & 63];
        *out++ = '=';
    }
    w->len = (size_t)(out - w->data);
    return OK;
}

/* A raw element: the open tag with the marker, and its content in base64. */
static int put_raw(writer *w, const char *open, Py_ssize_t open_len, const char *kind, const unsigned char *src,
                   size_t n) {
    if (put_bytes(w, open, (size_t)open_len - 1) || put_bytes(w, raw_decl, (size_t)raw_decl_len)
        || put_bytes(w, kind, strlen(kind)) || put_bytes(w, "\">", 2))
        return FAILED;
    return put_base64(w, src, n);
}

/* Bytes of _MAYBE_SPECIAL in wbxml/decoder.py; 2 for the XML-invalid controls. */
static unsigned char special[256];

static void init_special(void) {
    for (int c = 0; c < 0x20; c++) special[c] = (c == 0x09 || c == 0x0A || c == 0x0D) ? 1 : 2;
    special['\r'] = 1;
    special['&'] = special['<'] = special['>'] = 1;
    special[0xEF] = 1;
}

/* One element's text, as decoder._Translator writes it at END. */
static int put_text(writer *w, const dec_tag *d, int with_ns, const unsigned char *text, size_t n) {
    const char *open = with_ns ? d->open_ns : d->open;
    Py_ssize_t open_len = with_ns ? d->open_ns_len : d->open_len;
    int any = 0, not_xml = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char s = special[text[i]];
        if (s) {
            any = 1;
            if (s == 2) not_xml = 1;
            else if (text[i] == 0xEF && i + 2 < n && text[i + 1] == 0xBF && (text[i + 2] == 0xBE || text[i + 2] == 0xBF))
                not_xml = 1; /* U+FFFE, U+FFFF */
        }
    }
    if (d->binary || not_xml) return put_raw(w, open, open_len, "string", text, n);
    if (put_bytes(w, open, (size_t)open_len)) return FAILED;
    if (!any) return put_bytes(w, text, n);
    if (reserve(w, n)) return FAILED;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = text[i];
        const char *esc = NULL;
        switch (c) {
        case '&': esc = "&amp;"; break;
        case '<': esc = "&lt;"; break;
        case '>': esc = "&gt;"; break;
        case '\r': esc = "&#13;"; break;
        }
        if (esc) {
            if (put_bytes(w, esc, strlen(esc))) return FAILED;
        } else {
            if (w->len == w->cap && reserve(w, 1)) return FAILED;
            w->data[w->len++] = c;
        }
    }
    return OK;
}

typedef struct {
    const dec_tag *tag;
    int page;
} open_element;

#define NO_CONTENT 0
#define TEXT 1
#define BYTES 2

static int translate_body(writer *w, const unsigned char *data, size_t size, size_t pos, size_t max_depth,
                          size_t max_elements, size_t max_string, open_element *stack) {
    size_t depth = 0, elements = 0;
    int page = 0, parent_page = -1, root_done = 0;
    const dec_tag *pending = NULL;
    int pending_ns = 0, content = NO_CONTENT;
    const unsigned char *text = NULL;
    size_t text_len = 0;
    while (pos < size) {
        unsigned char b = data[pos];
        unsigned char low = b & 0x3F;
        if (low >= 5) { /* a tag */
            if ((b & 0x80) || root_done) return DECLINE;
            const dec_tag *d = dec_tags[page][low];
            if (d == NULL || ++elements > max_elements) return DECLINE;
            if (pending != NULL) {
                if (content != NO_CONTENT) return DECLINE; /* content before a child element */
                if (pending_ns ? put_bytes(w, pending->open_ns, (size_t)pending->open_ns_len)
                               : put_bytes(w, pending->open, (size_t)pending->open_len))
                    return FAILED;
                pending = NULL;
            }
            if (b & 0x40) {
                if (depth >= max_depth) return DECLINE;
                pending = d;
                pending_ns = page != parent_page;
                content = NO_CONTENT;
                stack[depth].tag = d;
                stack[depth].page = page;
                depth++;
                parent_page = page;
            } else {
                if (page == parent_page ? put_bytes(w, d->empty, (size_t)d->empty_len)
                                        : put_bytes(w, d->empty_ns, (size_t)d->empty_ns_len))
                    return FAILED;
                if (depth == 0) root_done = 1;
            }
            pos++;
        } else if (b == END) {
            if (pending != NULL) {
                int r;
                if (content == TEXT)
                    r = put_text(w, pending, pending_ns, text, text_len);
                else if (content == BYTES)
                    r = put_raw(w, pending_ns ? pending->open_ns : pending->open,
                                pending_ns ? pending->open_ns_len : pending->open_len, "opaque", text, text_len);
                else
                    r = pending_ns ? put_bytes(w, pending->open_ns, (size_t)pending->open_ns_len)
                                   : put_bytes(w, pending->open, (size_t)pending->open_len);
                if (r) return r;
                pending = NULL;
            }
            if (depth == 0) return DECLINE;
            depth--;
            if (put_bytes(w, stack[depth].tag->close, (size_t)stack[depth].tag->close_len)) return FAILED;
            if (depth) {
                parent_page = stack[depth - 1].page;
            } else {
                root_done = 1;
                parent_page = -1;
            }
            pos++;
        } else if (b == STR_I) {
            const unsigned char *end = memchr(data + pos + 1, 0, size - pos - 1);
            if (end == NULL) return DECLINE;
            size_t n = (size_t)(end - (data + pos + 1));
            if (n > max_string || pending == NULL || content != NO_CONTENT) return DECLINE;
            content = TEXT;
            text = data + pos + 1;
            text_len = n;
            pos += n + 2;
        } else if (b == SWITCH_PAGE) {
            if (pos + 1 >= size || !page_known[data[pos + 1]]) return DECLINE;
            page = data[pos + 1];
            pos += 2;
        } else if (b == OPAQUE) {
            size_t n, at = pos + 1;
            if (read_mb(data, size, &at, &n) || n > max_string || n > size - at) return DECLINE;
            if (pending == NULL || content != NO_CONTENT) return DECLINE;
            content = BYTES;
            text = data + at;
            text_len = n;
            pos = at + n;
        } else {
            return DECLINE; /* ENTITY, STR_T, LITERAL*, EXT*, PI: the Python translator */
        }
    }
    return depth == 0 && root_done ? OK : DECLINE;
}

/* translate(data, max_depth, max_elements, max_string) -> XML bytes | None */
static PyObject *translate(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t max_depth, max_elements, max_string;
    if (!PyArg_ParseTuple(args, "y*nnn", &view, &max_depth, &max_elements, &max_string)) return NULL;
    if (raw_decl == NULL) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_RuntimeError, "wbxml._speedups.set_decode_table() was not called");
        return NULL;
    }
    const unsigned char *data = view.buf;
    size_t size = (size_t)view.len, pos = 1, value, index = 0;
    int has_index = 0, r = DECLINE;
    writer w = {NULL, 0, 0, 0, NULL};
    open_element *stack = NULL;
    if (size == 0 || data[0] > 0x03) goto done;
    if (read_mb(data, size, &pos, &value)) goto done; /* public id */
    if (value == 0) {
        if (read_mb(data, size, &pos, &index)) goto done;
        has_index = 1;
    }
    if (data[0] != 0x00) { /* WBXML 1.0 has no charset */
        if (read_mb(data, size, &pos, &value) || (value != 106 && value != 0)) goto done;
    }
    if (read_mb(data, size, &pos, &value) || value > size - pos || (has_index && index >= value)) goto done;
    pos += value; /* the string table: only STR_T would read it, and STR_T declines */
    if (max_depth < 0 || max_elements < 0 || max_string < 0) goto done;
    /* No document nests deeper than it has bytes. */
    size_t depth_bound = (size_t)max_depth < size ? (size_t)max_depth : size;
    stack = PyMem_Malloc((depth_bound + 1) * sizeof(open_element));
    if (stack == NULL) {
        PyErr_NoMemory();
        r = FAILED;
        goto done;
    }
    if (reserve(&w, size + size / 2 + 64)) { /* XML text is longer than WBXML; grows if needed */
        r = FAILED;
        goto done;
    }
    r = translate_body(&w, data, size, pos, depth_bound, (size_t)max_elements, (size_t)max_string, stack);
done:
    PyBuffer_Release(&view);
    PyMem_Free(stack);
    PyObject *result;
    if (r == OK) {
        result = PyBytes_FromStringAndSize((const char *)w.data, (Py_ssize_t)w.len);
    } else if (r == DECLINE) {
        result = Py_None;
        Py_INCREF(result);
    } else {
        result = NULL;
    }
    PyMem_Free(w.data);
    return result;
}

static PyMethodDef methods[] = {
    {"set_table", set_table, METH_VARARGS, "set_table(tags, raw_namespace, max_depth): the encoder's tag table"},
    {"encode", encode, METH_O, "encode(root) -> bytes, or None where the Python encoder must decide"},
    {"set_decode_table", set_decode_table, METH_VARARGS, "set_decode_table(rows, raw_decl): the decoder's tag strings"},
    {"translate", translate, METH_VARARGS,
     "translate(data, max_depth, max_elements, max_string) -> XML bytes, or None where the Python translator must decide"},
    {NULL, NULL, 0, NULL},
};

static void free_module(void *module) {
    clear_table();
    clear_decode_table();
    PyMem_Free((void *)raw_ns);
    raw_ns = NULL;
    Py_CLEAR(element_type);
    Py_CLEAR(a2b_base64);
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "wbxml._speedups", "C fast paths of the WBXML encoder and decoder (see wbxml/_speedups.c).", -1,
    methods, NULL, NULL, NULL, free_module,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    /* The C-API import checks that the running lxml offers the functions and
     * signatures this file was compiled against; it fails (ImportError, so the
     * pure Python encoder is used) when it does not. */
    if (import_lxml__etree() < 0) return NULL;
    init_special();
    PyObject *etree = PyImport_ImportModule("lxml.etree");
    if (etree == NULL) return NULL;
    element_type = PyObject_GetAttrString(etree, "_Element");
    Py_DECREF(etree);
    if (element_type == NULL) return NULL;
    PyObject *binascii = PyImport_ImportModule("binascii");
    if (binascii == NULL) return NULL;
    a2b_base64 = PyObject_GetAttrString(binascii, "a2b_base64");
    Py_DECREF(binascii);
    if (a2b_base64 == NULL) return NULL;
    return PyModule_Create(&module_def);
}
