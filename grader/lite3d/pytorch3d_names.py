"""Which lite3d modules answer for which pytorch3d module, when a course file does `import pytorch3d...`
inside the grader's sandbox (grader/compat.py reads this). A name lite3d does not have imports as a
stand-in that raises NotImplementedError naming it when used, so a file that imports the renderer but is
graded on its geometry still loads."""

MODULES: dict[str, tuple[str, ...]] = {
    "pytorch3d": (),
    "pytorch3d.renderer": ("cameras", "transforms", "structures"),
    "pytorch3d.renderer.cameras": ("cameras",),
    "pytorch3d.transforms": ("transforms",),
    "pytorch3d.structures": ("structures",),
    "pytorch3d.ops": ("ops",),
    "pytorch3d.ops.knn": ("ops",),
    "pytorch3d.loss": ("loss",),
    "pytorch3d.utils": ("utils",),
    "pytorch3d.io": ("io",),
}
