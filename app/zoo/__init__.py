"""The built-in source zoo: image domains, the reproducible CPU training recipe, and ``tscout zoo build``.

``domains``   real digits (scikit-learn) and procedural 32×32 RGB domains, pure functions of a seed
``recipe``    the deterministic training recipe (fixed seeds, one thread, deterministic algorithms)
``sources``   which sources the zoo holds, and why each is there
``build``     train every source and write ``models/<name>.safetensors`` + ``.toml`` + ``.stats.npz``

Pure domain code: no web, database or executor imports.
"""
