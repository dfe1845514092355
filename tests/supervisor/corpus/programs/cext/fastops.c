#include <Python.h>

static PyMethodDef methods[] = {{NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "fastops", NULL, -1, methods};
PyMODINIT_FUNC PyInit_fastops(void) { return PyModule_Create(&mod); }
