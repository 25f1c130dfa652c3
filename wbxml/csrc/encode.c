/*
 * Encoding: lxml element tree -> WBXML bytes.
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
#include "speedups.h"

#include "lxml-version.h"
#include "etree_defs.h"
#include "etree.h" /* struct LxmlElement */

static PyObject *element_type = NULL; /* lxml.etree._Element */
static PyObject *a2b_base64 = NULL;   /* binascii.a2b_base64, for raw-marked elements */

typedef struct {
    writer w;
    int page; /* code page in force */
} encoder;

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

/* set_table(tags: dict[str, tuple[int, int, bool]], raw_namespace: str, max_depth: int)
 * tags: lxml tag "{AirSync:}Sync" -> (page, token, binary). */
PyObject *wbxml_set_table(PyObject *self, PyObject *args) {
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
static int put_run(encoder *enc, xmlNode *start, xmlNode *stop) {
    for (xmlNode *c = start; c != stop; c = c->next)
        if (c->content && put_bytes(&enc->w, c->content, strlen((const char *)c->content))) return FAILED;
    return OK;
}

/* STR_I <run> 00: the run cannot hold NUL (libxml2 strings end there). */
static int put_inline_run(encoder *enc, xmlNode *start, xmlNode *stop) {
    PUT(&enc->w, STR_I);
    if (put_run(enc, start, stop)) return FAILED;
    PUT(&enc->w, 0);
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
static int write_raw(encoder *enc, const tag_entry *e, xmlNode *text, int kind) {
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
    PyObject *payload = PyObject_CallOneArg(a2b_base64, b64);
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
        result = reserve(&enc->w, 1);
        if (result == OK) enc->w.data[enc->w.len++] = e->token;
    } else if (kind == 2 && memchr(data, 0, size) != NULL) {
        result = DECLINE; /* NUL in an inline string: the Python path refuses it */
    } else if ((result = reserve(&enc->w, 2)) == OK) {
        enc->w.data[enc->w.len++] = e->token | WITH_CONTENT;
        if (kind == 1) {
            enc->w.data[enc->w.len++] = OPAQUE;
            if ((result = put_mb_u_int32(&enc->w, size)) == OK) result = put_bytes(&enc->w, data, size);
        } else {
            enc->w.data[enc->w.len++] = STR_I;
            if ((result = put_bytes(&enc->w, data, size)) == OK && (result = reserve(&enc->w, 1)) == OK)
                enc->w.data[enc->w.len++] = 0;
        }
        if (result == OK && (result = reserve(&enc->w, 1)) == OK) enc->w.data[enc->w.len++] = END;
    }
    Py_DECREF(payload);
    return result;
}

static int write_element(encoder *enc, xmlNode *el, int depth) {
    if (el->type != XML_ELEMENT_NODE || el->ns == NULL || el->ns->href == NULL) return DECLINE;
    const tag_entry *e = lookup(el->ns->href, el->name);
    if (e == NULL) return DECLINE;
    if (e->page != enc->page) {
        if (reserve(&enc->w, 2)) return FAILED;
        enc->w.data[enc->w.len++] = SWITCH_PAGE;
        enc->w.data[enc->w.len++] = e->page;
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
            PUT(&enc->w, e->token);
            return OK;
        }
        if (reserve(&enc->w, 2)) return FAILED;
        enc->w.data[enc->w.len++] = e->token | WITH_CONTENT;
        if (e->binary) {
            enc->w.data[enc->w.len++] = OPAQUE;
            int r = put_mb_u_int32(&enc->w, text_len);
            if (r) return r;
            if (put_run(enc, text, NULL)) return FAILED;
        } else {
            enc->w.data[enc->w.len++] = STR_I;
            if (put_run(enc, text, NULL)) return FAILED;
            PUT(&enc->w, 0);
        }
        PUT(&enc->w, END);
        return OK;
    }
    if (depth >= max_depth || kind) return DECLINE;
    PUT(&enc->w, e->token | WITH_CONTENT);
    if (text_len && put_inline_run(enc, text, child)) return FAILED;
    while (child) {
        if (child->type != XML_ELEMENT_NODE) return DECLINE;
        int r = write_element(enc, child, depth + 1);
        if (r) return r;
        xmlNode *tail = child->next;
        child = tail;
        if (run_length(&child) && put_inline_run(enc, tail, child)) return FAILED;
    }
    PUT(&enc->w, END);
    return OK;
}


/* encode(root) -> bytes | None */
PyObject *wbxml_encode(PyObject *self, PyObject *root) {
    if (raw_ns == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "wbxml._speedups.set_table() was not called");
        return NULL;
    }
    if (!PyObject_TypeCheck(root, (PyTypeObject *)element_type)) Py_RETURN_NONE;
    xmlNode *node = ((struct LxmlElement *)root)->_c_node;
    if (node == NULL) Py_RETURN_NONE;
    encoder enc = {{NULL, 0, 0}, 0};
    static const unsigned char header[] = {0x03, 0x01, 0x6A, 0x00};
    int r = put_bytes(&enc.w, header, sizeof header);
    if (r == OK) r = write_element(&enc, node, 0);
    PyObject *result;
    if (r == OK)
        result = PyBytes_FromStringAndSize((const char *)enc.w.data, (Py_ssize_t)enc.w.len);
    else if (r == DECLINE) {
        result = Py_None;
        Py_INCREF(result);
    } else
        result = NULL;
    PyMem_Free(enc.w.data);
    return result;
}

int wbxml_encode_init(void) {
    PyObject *etree = PyImport_ImportModule("lxml.etree");
    if (etree == NULL) return -1;
    element_type = PyObject_GetAttrString(etree, "_Element");
    Py_DECREF(etree);
    if (element_type == NULL) return -1;
    PyObject *binascii = PyImport_ImportModule("binascii");
    if (binascii == NULL) return -1;
    a2b_base64 = PyObject_GetAttrString(binascii, "a2b_base64");
    Py_DECREF(binascii);
    return a2b_base64 == NULL ? -1 : 0;
}

void wbxml_encode_free(void) {
    clear_table();
    PyMem_Free((void *)raw_ns);
    raw_ns = NULL;
    Py_CLEAR(element_type);
    Py_CLEAR(a2b_base64);
}
