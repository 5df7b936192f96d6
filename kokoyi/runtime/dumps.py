"""`kyic compile F --dump-after at_call|batch|emit --batch-level NAME=L1,...`: the call-time
passes (kokoyi.compiler.pipeline.CALL_PASSES) for one call signature per module, as text."""
from __future__ import annotations


def dump_call_pass(state, signatures: dict, pass_name: str) -> str:
    """The IR (after `at_call`), the kernel (after `batch`) or its Python source (after `emit`)
    of each module named in signatures (every module at batch level 0 when none is)."""
    from kokoyi.compiler import ir, kernel
    from kokoyi.compiler.pipeline import run_call_passes
    from kokoyi.runtime.loader import install
    from kokoyi.runtime.specialize import module_dtype
    from kokoyi.runtime.symbols import SymbolTable
    from kokoyi.standalone import Signature, StandaloneError, _example_params, _input_descs

    table = SymbolTable()
    install(state, table)
    modules = [k for k, v in table.items() if getattr(v, "__kokoyi_spec__", None) is not None]
    chosen = {}
    for key, sig in signatures.items():
        canonical = table.canonical(key)
        if canonical not in modules:
            raise StandaloneError(f"--batch-level {key}: no module `{key}`; modules: {', '.join(modules) or 'none'}")
        chosen[canonical] = sig
    if not any(sig.levels for sig in chosen.values()):
        chosen = {k: chosen.get(k, Signature(())) for k in modules}
    parts = []
    for key, sig in chosen.items():
        forward = table[key]
        spec = forward.__kokoyi_spec__
        if not sig.levels:
            sig.levels = (0,) * len(spec.inputs)
        if len(sig.levels) != len(spec.inputs) or any(k not in (0, 1) for k in sig.levels):
            raise StandaloneError(f"--batch-level {key}=...: give 0 or 1 for each of its {len(spec.inputs)} "
                                  f"inputs ({', '.join(i.key for i in spec.inputs)})")
        specs = forward.__kokoyi_specializations__
        if pass_name == "at_call":  # (no signature needed)
            parts.append(ir.dump(specs.prepared_ir()) + "\n")
            continue
        params = _example_params(key, spec, table, signatures)
        cs = specs.call_state(f"{specs.name}__batched", _input_descs(key, spec, sig), specs.param_descs(params),
                              module_dtype((), params), params)
        run_call_passes(cs, start_after="at_call", stop_after=pass_name)
        parts.append(kernel.dump(cs.kernel) if pass_name == "batch" else cs.code)
    return "\n".join(parts)
