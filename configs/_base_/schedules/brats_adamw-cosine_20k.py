# AdamW, linear warm-up, cosine decay over 20k iterations (the hand-bone
# schedule); keeps the checkpoint with the best validation mean Dice over
# WT / TC / ET of BraTSMetric.
_base_ = ['./hand_bone_adamw-cosine_20k.py']
default_hooks = dict(
    checkpoint=dict(save_best='mean_dice', rule='greater'))
