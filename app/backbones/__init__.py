"""Backbones: the catalogue of candidate source models, their specs, and one adapter contract for every
family (zoo, timm, torchvision, hf, torchscript, export). No web, database or executor imports here.

The contract every adapter meets is :class:`app.backbones.base.BackboneAdapter`.
"""
