/*
 * wbxml/csrc: the fast paths of the WBXML encoder and decoder, in C.
 * What they do and why: module.c. Shared here: the WBXML tokens, the output
 * buffer both directions write into, and the functions module.c registers.
 */
#ifndef WBXML_SPEEDUPS_H
#define WBXML_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* WAP-192-WBXML 7.1 global tokens, and the content flag of a tag token. */
#define SWITCH_PAGE 0x00
#define END 0x01
#define STR_I 0x03
#define OPAQUE 0xC3
#define WITH_CONTENT 0x40

static inline char *copy_string(const char *s, size_t n) {
    char *out = PyMem_Malloc(n + 1);
    if (out) {
        memcpy(out, s, n);
        out[n] = 0;
    }
    return out;
}

/* ---- the output buffer of both directions ------------------------------- */

typedef struct {
    unsigned char *data;
    size_t len, cap;
} writer;

/* Results of the writers. */
#define OK 0
#define DECLINE 1 /* not the common case: the Python code takes over */
#define FAILED -1 /* a Python exception is set (out of memory) */

static inline int reserve(writer *enc, size_t more) {
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

static inline int put_bytes(writer *enc, const void *src, size_t n) {
    if (reserve(enc, n)) return FAILED;
    memcpy(enc->data + enc->len, src, n);
    enc->len += n;
    return OK;
}

/* encode.c */
PyObject *wbxml_set_table(PyObject *self, PyObject *args);
PyObject *wbxml_encode(PyObject *self, PyObject *root);
int wbxml_encode_init(void);
void wbxml_encode_free(void);

/* decode.c */
PyObject *wbxml_set_decode_table(PyObject *self, PyObject *args);
PyObject *wbxml_translate(PyObject *self, PyObject *args);
void wbxml_decode_init(void);
void wbxml_decode_free(void);

#endif
