/*
 * Decoding: WBXML -> XML text, which lxml's parser turns into the tree.
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
#include "speedups.h"

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
PyObject *wbxml_set_decode_table(PyObject *self, PyObject *args) {
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

/* An element's start tag: with its xmlns where its page differs from its parent's. */
static int put_open(writer *w, const dec_tag *d, int with_ns) {
    return with_ns ? put_bytes(w, d->open_ns, (size_t)d->open_ns_len) : put_bytes(w, d->open, (size_t)d->open_len);
}

/* A raw element: its start tag with the marker, and its content in base64. */
static int put_raw(writer *w, const dec_tag *d, int with_ns, const char *kind, const unsigned char *src, size_t n) {
    const char *open = with_ns ? d->open_ns : d->open;
    size_t open_len = (size_t)(with_ns ? d->open_ns_len : d->open_len);
    if (put_bytes(w, open, open_len - 1) || put_bytes(w, raw_decl, (size_t)raw_decl_len)
        || put_bytes(w, kind, strlen(kind)) || put_bytes(w, "\">", 2))
        return FAILED;
    return put_base64(w, src, n);
}

/* Bytes of _MAYBE_SPECIAL in wbxml/decoder.py; 2 for the XML-invalid controls. */
static unsigned char special[256];

void wbxml_decode_init(void) {
    for (int c = 0; c < 0x20; c++) special[c] = (c == 0x09 || c == 0x0A || c == 0x0D) ? 1 : 2;
    special['\r'] = 1;
    special['&'] = special['<'] = special['>'] = 1;
    special[0xEF] = 1;
}

/* One element's text, as decoder._Translator writes it at END. */
static int put_text(writer *w, const dec_tag *d, int with_ns, const unsigned char *text, size_t n) {
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
    if (d->binary || not_xml) return put_raw(w, d, with_ns, "string", text, n);
    if (put_open(w, d, with_ns)) return FAILED;
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
                if (put_open(w, pending, pending_ns)) return FAILED;
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
                    r = put_raw(w, pending, pending_ns, "opaque", text, text_len);
                else
                    r = put_open(w, pending, pending_ns);
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
PyObject *wbxml_translate(PyObject *self, PyObject *args) {
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
    writer w = {NULL, 0, 0};
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

void wbxml_decode_free(void) { clear_decode_table(); }
