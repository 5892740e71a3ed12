# SegFormer MiT-B0 for the 29 hand bones, trained on the labelled fold AND a
# pseudo-labelled dataset (confident ensemble predictions on the unlabelled
# test X-rays). Everything else (model, 512x512 pipelines, schedule,
# validation on the labelled fold) is ./segformer_mit-b0_1xb8-20k_handbone-
# 512x512.py.
#
# `data_root`: the labelled competition root (converted once with
#   tools/dataset_converters/hand_bone.py).
# `pseudo_root`: the output of
#   python tools/pseudo_label.py --task hand_bone \
#       --prob-dirs work_dirs/ens/test_probs/0_a work_dirs/ens/test_probs/1_b \
#       --images-dir data/hand_bone/test/DCM --out-dir data/hand_bone_pseudo \
#       --pos 0.9 --neg 0.1 --max-unsure 0.05
#   (packed labels whose unsure pixels are ignored; split='all' lists every
#   kept pseudo image, pseudo images never validate).
# Named `..._pseudo-handbone-...` so the labelled-only checks of
# tests/test_configs/test_hand_bone_configs.py (glob `*_handbone*`, a
# HandBoneDataset train set) do not pick it up; tests/test_tools/
# test_pseudo_label.py builds and checks it.
_base_ = './segformer_mit-b0_1xb8-20k_handbone-512x512.py'
data_root = 'data/hand_bone'
pseudo_root = 'data/hand_bone_pseudo'
fold = 0
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(
                type='HandBoneDataset',
                data_root=data_root,
                split='train',
                fold=fold,
                pipeline={{_base_.train_pipeline}}),
            dict(
                type='HandBoneDataset',
                data_root=pseudo_root,
                split='all',
                pipeline={{_base_.train_pipeline}}),
        ]))
val_dataloader = dict(dataset=dict(data_root=data_root, fold=fold))
test_dataloader = val_dataloader
