/*
 * wbxml._speedups: the fast paths of the WBXML encoder (encode.c) and decoder
 * (decode.c), in C; this file is the Python module around them.
 *
 * Why C. Encoding a 100-message Sync response in Python spends most of its
 * time asking lxml for tags and texts: each `.tag`, `.text`, `.tail` builds a
 * new Python string from the libxml2 node, and only walking the tree that way
 * costs about as much as pyactivesync's whole encoder. Decoding in Python
 * spends one interpreter step per token. Here the libxml2 nodes under lxml's
 * elements are read directly, as lxml's public C-API allows
 * (https://lxml.de/capi.html), and the tokens are translated in one C loop.
 *
 * Both paths give the Python code's exact output or decline (None), and the
 * Python code then runs: errors and the rare forms exist in one place only
 * (tests/wbxml/test_speedups.py holds the two to the same bytes).
 */
#include "speedups.h"

#include "lxml-version.h"
#include "etree_defs.h"
#include "etree_api.h" /* import_lxml__etree(); included here only */

static PyMethodDef methods[] = {
    {"set_table", wbxml_set_table, METH_VARARGS, "set_table(tags, raw_namespace, max_depth): the encoder's tag table"},
    {"encode", wbxml_encode, METH_O, "encode(root) -> bytes, or None where the Python encoder must decide"},
    {"set_decode_table", wbxml_set_decode_table, METH_VARARGS, "set_decode_table(rows, raw_decl): the decoder's tag strings"},
    {"translate", wbxml_translate, METH_VARARGS,
     "translate(data, max_depth, max_elements, max_string) -> XML bytes, or None where the Python translator must decide"},
    {NULL, NULL, 0, NULL},
};

static void free_module(void *module) {
    wbxml_encode_free();
    wbxml_decode_free();
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "wbxml._speedups", "C fast paths of the WBXML encoder and decoder (see wbxml/csrc/).", -1,
    methods, NULL, NULL, NULL, free_module,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    /* The C-API import checks that the running lxml offers the functions and
     * signatures this file was compiled against; it fails (ImportError, so the
     * pure Python encoder is used) when it does not. */
    if (import_lxml__etree() < 0) return NULL;
    if (wbxml_encode_init() < 0) return NULL;
    wbxml_decode_init();
    return PyModule_Create(&module_def);
}
