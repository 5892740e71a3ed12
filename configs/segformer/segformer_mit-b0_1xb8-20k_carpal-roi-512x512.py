# ROI specialist for the crowded carpal region of the hand-bone X-rays:
# SegFormer MiT-B0 trained on crops around the 8 carpal bones (Trapezium ...
# Pisiform, class indices 19-26), each crop resized to 512x512, i.e. about
# 4x the resolution the 512 general model sees there.
#
# It keeps all 29 classes (same dataset class, metric, checkpoint layout and
# class order as the general models; the finger and forearm bones cut by the
# crop are extra context). Only the carpal classes are pasted back
# (`tools/roi_specialist.py paste`); its mDice over 29 classes is not
# comparable to the general model's.
#
# Data (same folds as data/hand_bone):
#   python tools/roi_specialist.py make-dataset data/hand_bone \
#       data/hand_bone_carpal_roi --margin 0.15 --jitter 0.05
# Named `carpal-roi` (not `handbone-...`): its data root and pipeline differ
# from the full-image hand-bone configs checked together by
# tests/test_configs/test_hand_bone_configs.py.
_base_ = ['./segformer_mit-b0_1xb8-20k_handbone-512x512.py']
data_root = 'data/hand_bone_carpal_roi'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
