# segformer_mit-b0_1xb16-20k_brats-240x240.py with BCE + Dice instead of
# focal + Dice.
_base_ = './segformer_mit-b0_1xb16-20k_brats-240x240.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(type='MultiLabelBCELoss', loss_weight=1.0),
        dict(type='SoftDiceLoss', mode='multilabel', loss_weight=1.0),
    ]))
