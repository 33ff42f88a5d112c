# Run-time ISA level of this extension module (csrc/isa.c, linked into each module
# that dispatches on it; see csrc/dtnn_isa.h).  Included by those .pyx files;
# dtnn._kernels.isa drives every module through these three functions.
cdef extern from "dtnn_isa.h" nogil:
    int dtnn_isa_cpu()
    int dtnn_isa_active()
    void dtnn_isa_set_cap(int level)


def isa_cpu():
    """Best ISA level (0 generic, 1 avx2, 2 avx512) this CPU runs."""
    return int(dtnn_isa_cpu())


def isa_active():
    """ISA level this module's kernels use now (the CPU's best, capped)."""
    return int(dtnn_isa_active())


def set_isa_cap(int level):
    """Cap the ISA level (-1: back to $DTNN_ISA)."""
    dtnn_isa_set_cap(level)
