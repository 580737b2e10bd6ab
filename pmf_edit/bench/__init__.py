"""Edit-quality benchmark: run any editor over a manifest of edits, score any folder of outputs.

    manifest     EditItem / Manifest, load_manifest (JSON or CSV), load_images, load_masks, bundled manifests
    editors      the editor protocol (EditBatch -> images [, NFE]), our editors by name, module:function
    fm_editors   flow-matching baselines (ODE inversion, SDEdit, FlowEdit with CFG)
    run          run_editor, write_outputs (<id>.png / .npy + run.json with NFE and time)
    score        Scorer: target accuracy, preservation outside the mask, perceptual and structure distance
    curves       strength sweeps, the default rule, table and plot
    examples     the generators of the bundled manifests

The command line is ``pmf bench-edit run|score`` (apps/cmd_bench_edit.py); docs/bench_edit.md documents
each metric and how it relates to PIE-Bench-style papers.
"""
