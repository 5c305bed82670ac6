"""Readers for ``deputy-guard check``: what will be deployed, found in files (never shipped to Lambda).

``detect`` recognises an input by its content and hands back the trust policies in it as ``Site`` values;
``cloudformation`` and ``terraform`` read templates and plans; ``values`` resolves CloudFormation
intrinsics for one deploying account; ``cfnyaml`` and ``jsonpos`` load documents with line numbers.
"""
