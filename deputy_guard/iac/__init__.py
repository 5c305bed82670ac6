"""Readers for ``deputy-guard check``: what will be deployed, found in files (never shipped to Lambda).

``files`` reads inputs at a bounded cost; ``detect`` recognises an input by its content and hands back the
trust policies in it as ``Site`` values; ``cloudformation`` (with ``langext`` for ``Fn::ForEach``) and
``terraform`` read templates and plans; ``tfsource`` reads Terraform sources (``.tf``, parsed by ``hcl``
with tree-sitter) and ``tfrender`` writes their fixes back as HCL; ``values`` resolves intrinsics for one
deploying account; ``cfnyaml`` and ``jsonpos`` load documents with line numbers.
"""
