"""An example easyblocks plugin package: one block, `GatedResidual`, registered on import of
`easyblocks_example_plugin.blocks` (which the package's entry point names)."""
