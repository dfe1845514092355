#include <Python.h>

static PyMethodDef methods[] = {{NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "fastops_cpp", NULL, -1, methods};
PyMODINIT_FUNC PyInit_fastops_cpp(void) { return PyModule_Create(&mod); }
