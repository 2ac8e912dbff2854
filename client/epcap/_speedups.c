/*
 * epcap._speedups: the client's packet path in C, an optional accelerator.
 *
 * Three things Python does per packet, done here without a Python frame:
 *
 * - build(dlt, items, cls): the Packets of one packets frame. items is the
 *   frame's (time, length, data, ...) tuple as msgpack decoded it; each
 *   Packet reuses those objects (no value is converted or interpreted). Only
 *   the common case is handled: exact ints and bytes, whole triples. For
 *   anything else it returns None and epcap._protocol's pure-Python code,
 *   which defines the frame, decides (and raises its ProtocolError).
 *   A Packet holds only ints and bytes, so it can never be part of a
 *   reference cycle: it is left untracked by the cyclic GC, which would
 *   otherwise visit every packet of every batch still alive.
 *
 * - AsyncPackets(driver, slow): `async for` over a capture. Its __anext__
 *   takes the next packet of driver.rest, or else of driver.ready_packet()
 *   (a batch already received), and returns an awaitable that yields it at
 *   once (through am_send, with no exception); when none is at hand it
 *   returns slow(), the coroutine that waits for the next batch. It keeps
 *   the iterator it took from driver.rest until that is exhausted: the
 *   driver replaces rest only then.
 *
 * - seconds_items(batch): epcap.compat.pypcap's (ts, data) items of a batch
 *   of Packets, ts pypcap's float of seconds, computed as that module's
 *   _seconds() does. Again only the common case: times that are exact ints
 *   in int64's range, bytes data; for anything else (a RawTime) it returns
 *   None and the module's Python code decides.
 *
 * Limited API (3.11): one build serves every CPython from 3.11 on.
 */
#define Py_LIMITED_API 0x030B0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *
build(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "build(dlt, items, cls) takes 3 arguments");
        return NULL;
    }
    PyObject *dlt = args[0], *items = args[1], *cls = args[2];
    if (!PyTuple_Check(items) || !PyType_Check(cls) ||
        !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "build(dlt, items, cls): a tuple and a tuple type");
        return NULL;
    }
    Py_ssize_t size = PyTuple_Size(items);
    if (size % 3 != 0)
        Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < size; i += 3) {
        if (!PyLong_CheckExact(PyTuple_GetItem(items, i)) ||
            !PyLong_CheckExact(PyTuple_GetItem(items, i + 1)) ||
            !PyBytes_CheckExact(PyTuple_GetItem(items, i + 2)))
            Py_RETURN_NONE;
    }
    allocfunc alloc = (allocfunc)PyType_GetSlot((PyTypeObject *)cls, Py_tp_alloc);
    PyObject *packets = PyList_New(size / 3);
    if (packets == NULL || alloc == NULL) {
        Py_XDECREF(packets);
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_TypeError, "no tp_alloc");
    }
    for (Py_ssize_t i = 0; i < size; i += 3) {
        PyObject *packet = alloc((PyTypeObject *)cls, 4);
        if (packet == NULL) {
            Py_DECREF(packets);
            return NULL;
        }
        PyObject *fields[4] = {dlt, PyTuple_GetItem(items, i), PyTuple_GetItem(items, i + 1),
                               PyTuple_GetItem(items, i + 2)};
        for (int k = 0; k < 4; k++) {
            Py_INCREF(fields[k]);
            PyTuple_SetItem(packet, k, fields[k]); /* steals; packet's refcount is 1 */
        }
        PyObject_GC_UnTrack(packet);
        PyList_SetItem(packets, i / 3, packet); /* steals */
    }
    return packets;
}

/* -- pypcap's float time stamps --------------------------------------------- */

#define NS_PER_S 1000000000LL

/* pypcap's float for a time in nanoseconds, exactly as
 * epcap.compat.pypcap._seconds() computes it: sec, nsec = divmod(time,
 * 10**9), with Python's floor (a time before 1970 still has an nsec of 0
 * to 10**9 - 1), then sec + nsec * 1e-9 in doubles (not time / 1e9, which
 * rounds differently). sec and nsec are exact as doubles (|sec| < 2**34);
 * the product and the sum must be rounded one at a time, as Python's float
 * operations are: the volatile keeps the compiler from fusing them into one
 * multiply-add (GCC does on aarch64 unless -ffp-contract=off), which
 * rounds once and gives another float for some times. */
static double
seconds_of(long long ns)
{
    long long sec = ns / NS_PER_S, nsec = ns % NS_PER_S;
    if (nsec < 0) { /* C truncates toward zero */
        nsec += NS_PER_S;
        sec -= 1;
    }
    volatile double fraction = (double)nsec * 1e-9;
    return (double)sec + fraction;
}

/* One packet's (seconds, data), or NULL: with an exception set on failure,
 * without one when the packet is not the common case. */
static PyObject *
seconds_item(PyObject *packet)
{
    if (!PyTuple_Check(packet) || PyTuple_Size(packet) != 4)
        return NULL;
    PyObject *when = PyTuple_GetItem(packet, 1), *data = PyTuple_GetItem(packet, 3);
    if (!PyLong_CheckExact(when) || !PyBytes_CheckExact(data))
        return NULL; /* a RawTime: the Python code reads its fields */
    int overflow;
    long long ns = PyLong_AsLongLongAndOverflow(when, &overflow);
    if (overflow != 0 || (ns == -1 && PyErr_Occurred()))
        return NULL;
    PyObject *seconds = PyFloat_FromDouble(seconds_of(ns));
    if (seconds == NULL)
        return NULL;
    /* data is borrowed from packet, which the batch may drop as soon as
     * code runs (a collection the new tuple starts): referenced first */
    Py_INCREF(data);
    PyObject *item = PyTuple_New(2);
    if (item == NULL) {
        Py_DECREF(seconds);
        Py_DECREF(data);
        return NULL;
    }
    PyTuple_SetItem(item, 0, seconds); /* steal */
    PyTuple_SetItem(item, 1, data);
    PyObject_GC_UnTrack(item); /* a float and bytes: no cycle to find */
    return item;
}

static PyObject *
seconds_items(PyObject *module, PyObject *batch)
{
    (void)module;
    if (!PyList_Check(batch)) {
        PyErr_SetString(PyExc_TypeError, "seconds_items(batch): a list of packets");
        return NULL;
    }
    if (!PyList_CheckExact(batch))
        Py_RETURN_NONE; /* its own __iter__, maybe: Python iterates it */
    Py_ssize_t size = PyList_Size(batch);
    PyObject *items = PyList_New(size);
    if (items == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < size; i++) {
        /* code a collection runs (a __del__) may change the batch: each
         * packet is taken afresh, and a batch resized meanwhile is no
         * common case */
        PyObject *packet = PyList_GetItem(batch, i);
        PyObject *item = packet != NULL ? seconds_item(packet) : NULL;
        if (item == NULL) {
            Py_DECREF(items);
            if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_IndexError))
                return NULL; /* out of memory */
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        PyList_SetItem(items, i, item); /* steals */
    }
    if (PyList_Size(batch) != size) {
        Py_DECREF(items);
        Py_RETURN_NONE;
    }
    return items;
}

/* -- the awaitable of a packet at hand ---------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *value; /* NULL once delivered */
} Ready;

static PyTypeObject *ReadyType;

static void
ready_dealloc(PyObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    Py_CLEAR(((Ready *)self)->value);
    freefunc tp_free = (freefunc)PyType_GetSlot(type, Py_tp_free);
    tp_free(self);
    Py_DECREF(type);
}

static PyObject *
ready_await(PyObject *self)
{
    return Py_NewRef(self);
}

static PySendResult
ready_send(PyObject *self, PyObject *arg, PyObject **result)
{
    (void)arg;
    Ready *ready = (Ready *)self;
    if (ready->value == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited packet");
        *result = NULL;
        return PYGEN_ERROR;
    }
    *result = ready->value; /* the reference moves to the caller */
    ready->value = NULL;
    return PYGEN_RETURN;
}

static PyObject *
ready_next(PyObject *self)
{
    /* As an iterator (yield from, asyncio's wrappers): StopIteration(value),
     * built as an instance, since a Packet is a tuple. */
    PyObject *value = NULL;
    if (ready_send(self, Py_None, &value) == PYGEN_ERROR)
        return NULL;
    PyObject *stop = PyObject_CallFunctionObjArgs(PyExc_StopIteration, value, NULL);
    Py_DECREF(value);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

static PyType_Slot ready_slots[] = {
    {Py_tp_dealloc, ready_dealloc},
    {Py_am_await, ready_await},
    {Py_am_send, ready_send},
    {Py_tp_iter, ready_await},
    {Py_tp_iternext, ready_next},
    {Py_tp_doc, "A packet at hand: awaiting it returns it."},
    {0, NULL},
};

static PyType_Spec ready_spec = {
    .name = "epcap._speedups.Ready",
    .basicsize = sizeof(Ready),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = ready_slots,
};

/* -- async for over a capture --------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *driver; /* whose .rest holds the packets at hand */
    PyObject *rest;   /* driver.rest when last looked at (replaced only once exhausted) */
    PyObject *slow;   /* slow(): a coroutine for the next packet */
    PyObject *ready;  /* the last Ready, reused once nobody else holds it */
} AsyncPackets;

static PyObject *rest_name, *ready_name;

static PyObject *
packets_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *driver, *slow;
    if (kwargs != NULL && PyDict_Size(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "AsyncPackets(driver, slow) takes no keywords");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "AsyncPackets", 2, 2, &driver, &slow))
        return NULL;
    if (!PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "AsyncPackets: slow must be callable");
        return NULL;
    }
    allocfunc alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);
    AsyncPackets *self = (AsyncPackets *)alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->driver = Py_NewRef(driver);
    self->slow = Py_NewRef(slow);
    return (PyObject *)self;
}

static int
packets_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((AsyncPackets *)self)->driver);
    Py_VISIT(((AsyncPackets *)self)->rest);
    Py_VISIT(((AsyncPackets *)self)->slow);
    Py_VISIT(((AsyncPackets *)self)->ready);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
packets_clear(PyObject *self)
{
    Py_CLEAR(((AsyncPackets *)self)->driver);
    Py_CLEAR(((AsyncPackets *)self)->rest);
    Py_CLEAR(((AsyncPackets *)self)->slow);
    Py_CLEAR(((AsyncPackets *)self)->ready);
    return 0;
}

static void
packets_dealloc(PyObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    packets_clear(self);
    freefunc tp_free = (freefunc)PyType_GetSlot(type, Py_tp_free);
    tp_free(self);
    Py_DECREF(type);
}

static PyObject *
packets_aiter(PyObject *self)
{
    return Py_NewRef(self);
}

static PyObject *
packets_anext(PyObject *self)
{
    AsyncPackets *packets = (AsyncPackets *)self;
    if (packets->driver == NULL) {
        PyErr_SetString(PyExc_ValueError, "AsyncPackets was cleared");
        return NULL;
    }
    PyObject *packet = packets->rest != NULL ? PyIter_Next(packets->rest) : NULL;
    if (packet == NULL) {
        if (PyErr_Occurred())
            return NULL;
        packet = PyObject_CallMethodObjArgs(packets->driver, ready_name, NULL); /* next batch */
        if (packet == NULL)
            return NULL;
        if (packet == Py_None) {
            Py_DECREF(packet);
            return PyObject_CallNoArgs(packets->slow);
        }
        PyObject *rest = PyObject_GetAttr(packets->driver, rest_name); /* now that batch */
        if (rest == NULL) {
            Py_DECREF(packet);
            return NULL;
        }
        PyObject *old = packets->rest;
        packets->rest = rest;
        Py_XDECREF(old);
    }
    PyObject *ready = packets->ready;
    if (ready != NULL && Py_REFCNT(ready) == 1 && ((Ready *)ready)->value == NULL) {
        Py_INCREF(ready); /* awaited and dropped by all but us: reuse it */
    } else {
        allocfunc alloc = (allocfunc)PyType_GetSlot(ReadyType, Py_tp_alloc);
        ready = alloc(ReadyType, 0);
        if (ready == NULL) {
            Py_DECREF(packet);
            return NULL;
        }
        PyObject *old = packets->ready;
        packets->ready = Py_NewRef(ready);
        Py_XDECREF(old);
    }
    ((Ready *)ready)->value = packet;
    return ready;
}

static PyType_Slot packets_slots[] = {
    {Py_tp_new, packets_new},
    {Py_tp_dealloc, packets_dealloc},
    {Py_tp_traverse, packets_traverse},
    {Py_tp_clear, packets_clear},
    {Py_am_aiter, packets_aiter},
    {Py_am_anext, packets_anext},
    {Py_tp_doc, "AsyncPackets(driver, slow): async for over driver.rest, then slow()."},
    {0, NULL},
};

static PyType_Spec packets_spec = {
    .name = "epcap._speedups.AsyncPackets",
    .basicsize = sizeof(AsyncPackets),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = packets_slots,
};

/* -- the module ------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"build", (PyCFunction)(void (*)(void))build, METH_FASTCALL,
     "build(dlt, items, cls): the frame's Packets as a list, or None if the\n"
     "frame is not the common case (then the pure-Python code decides)."},
    {"seconds_items", seconds_items, METH_O,
     "seconds_items(batch): epcap.compat.pypcap's (float seconds, data) items\n"
     "of a list of Packets as a list, or None if a packet is not the common\n"
     "case (then the pure-Python code decides)."},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *module)
{
    rest_name = PyUnicode_InternFromString("rest");
    ready_name = PyUnicode_InternFromString("ready_packet");
    if (rest_name == NULL || ready_name == NULL)
        return -1;
    ReadyType = (PyTypeObject *)PyType_FromSpec(&ready_spec);
    if (ReadyType == NULL)
        return -1;
    PyObject *packets = PyType_FromSpec(&packets_spec);
    if (packets == NULL)
        return -1;
    int rc = PyModule_AddObjectRef(module, "AsyncPackets", packets);
    Py_DECREF(packets);
    return rc;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "epcap._speedups",
    .m_doc = "The client's packet path in C (optional; epcap works without it).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&module_def);
}
