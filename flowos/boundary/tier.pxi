# What the engine's two compiled tiers share: boundary/_python.pyx's PythonTier and cprocessor.pyx's
# CythonTier each include this. The including module defines its own tier_ctx (whose `tier` is the
# tier object) and its tier_process, tier_flow_end and tier_teardown; the ops below name them.

cdef bytes fill_ops(fo_processor_ops *ops, processor, str name, type base, uint32_t state_size):
    """The engine's view of a processor: named, at its level, with this module's callbacks; message
    only where the class answers messages (base: the tier's base class). Returns the name's bytes,
    which the ops point at: the caller keeps them."""
    cdef bytes encoded = name.encode()
    memset(ops, 0, sizeof(ops[0]))
    ops.name = encoded
    ops.level = <fo_level><int>LEVELS.index(processor.level)
    ops.readonly = bool(processor.readonly)
    ops.ctx_size = sizeof(tier_ctx)
    ops.state_size = state_size
    ops.setup = tier_setup
    ops.process = tier_process
    ops.flow_end = tier_flow_end
    ops.teardown = tier_teardown
    if type(processor).on_message is not base.on_message:
        ops.message = tier_message
    return encoded


cdef int tier_setup(void *ctx, const void *params, size_t params_len, char *err, size_t errlen) noexcept nogil:
    memcpy(ctx, params, sizeof(tier_ctx))
    return 0


cdef int tier_message(void *ctx, const char *msg, char *reply, size_t length) noexcept nogil:
    with gil:
        ret, text = (<object>(<tier_ctx *>ctx).tier).message_desk.answer(msg.decode("utf-8", "replace"))
        return copy_reply(ret, text, reply, length)


cdef int copy_reply(int ret, str text, char *reply, size_t length):
    """Writes a message's reply text into the engine's buffer; returns ret if it is an error, else the text's length."""
    data = text.encode("utf-8", "replace")
    cdef size_t n = min(<size_t>len(data), length - 1)
    memcpy(reply, <const char *>data, n)
    reply[n] = 0
    return ret if ret < 0 else len(data)
