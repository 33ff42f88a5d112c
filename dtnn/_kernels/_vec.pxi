# The 1-D argument check of the compression wrappers (_compress, _fused), included so it
# stays inline C: the C kernels take raw pointers, so a wrong dtype, rank, layout or a
# read-only output must be a ValueError here, never memory corruption there.

cdef cnp.ndarray _vec(object a, object dtype, str name, bint writable=False):
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise ValueError(f"{name} must be {np.dtype(dtype)}, got {a.dtype}")
    if a.ndim != 1 or not a.flags.c_contiguous:
        raise ValueError(f"{name} must be a contiguous 1-D array, got shape {a.shape}")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} must be writable")
    return a
