# Argument checks shared by the kernel wrappers (included, so they stay inline C).
# The C kernels take raw pointers: a wrong dtype, rank or an aliasing output must be
# a ValueError here, never memory corruption there.

cdef cnp.ndarray _input_f32(object a, str name, int ndim):
    """``a`` as a C-contiguous float32 array of rank ``ndim`` (copied only if strided)."""
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise ValueError(f"{name} must be float32, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    return a


cdef cnp.ndarray _f32c(object a, str name, int ndim):
    """The short-message variant of :func:`_input_f32` used by the conv kernels."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float32 or a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D float32 numpy array")
    return np.ascontiguousarray(a)


cdef cnp.ndarray _output_f32(object out, tuple shape, object src):
    """A new float32 array of ``shape``, or ``out`` checked to be one that does not
    overlap ``src`` (an array or a tuple of arrays)."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if not isinstance(out, np.ndarray):
        raise ValueError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != np.float32:
        raise ValueError(f"out must be float32, got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    for s in (src if isinstance(src, tuple) else (src,)):
        if np.may_share_memory(out, s):
            raise ValueError("out must not overlap the input array")
    return out


cdef _check_window(str what, Py_ssize_t R, Py_ssize_t S, Py_ssize_t stride_h,
                   Py_ssize_t stride_w, Py_ssize_t pad_h, Py_ssize_t pad_w):
    """ValueError unless a sliding ``what`` ("kernel", "window") of R x S has sizes and
    strides >= 1 and paddings >= 0."""
    if R < 1 or S < 1:
        raise ValueError(f"{what} size must be >= 1, got R={R}, S={S}")
    if stride_h < 1 or stride_w < 1:
        raise ValueError(f"stride must be >= 1, got ({stride_h}, {stride_w})")
    if pad_h < 0 or pad_w < 0:
        raise ValueError(f"padding must be >= 0, got ({pad_h}, {pad_w})")
