"""DLCV Fall 2022 HW4, Problem 2: Office-Home inference, called by hw4_2.sh as

    bash hw4_2.sh $1 $2 $3    # $1: input csv (id,filename,label), $2: image folder, $3: output csv

The TA's p2_grade.py zips your output rows with the ground-truth rows and asserts that `id` and `filename`
match row by row, so the output must keep the INPUT CSV's row order (not the order in which the images
were found on disk), with the header `id,filename,label` and the predicted class NAME as the label.
"""
import argparse
import csv
import pathlib


def build_label2idx(label_csv):
    """Class name -> index, from the sorted set of the labels in a training CSV (id,filename,label with a header).

    Sorting makes the mapping the same on every machine (the same index for the same name at training and at
    inference). Returns a dict {class_name: int} with indices 0..K-1.
    """
    # BEGIN SOLUTION 2.4
    with open(label_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    return {name: k for k, name in enumerate(sorted({row["label"] for row in rows}))}
    # END SOLUTION


def write_predictions(input_csv, filename2label, output_csv):
    """Write the prediction CSV.

    input_csv: path of the test CSV (header id,filename,label; its label column may be empty);
    filename2label: {image file name: predicted class name} (in whatever order the images were read);
    output_csv: path to write, with the header `id,filename,label` and one row per input row, in the
    input's order, with the input's id and filename.
    """
    # BEGIN SOLUTION 2.4
    with open(input_csv, newline="") as in_f:
        rows = list(csv.DictReader(in_f))
    with open(output_csv, "w", newline="") as out_f:
        writer = csv.writer(out_f)
        writer.writerow(("id", "filename", "label"))
        for row in rows:
            writer.writerow((row["id"], row["filename"], filename2label[row["filename"]]))
    # END SOLUTION


def predict(model, image_dir, filenames, label_names, image_size=128, device="cpu"):
    """{file name: predicted class name} for images in image_dir, with a classifier returning logits."""
    import torch
    from PIL import Image

    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    out = {}
    model.eval()
    with torch.no_grad():
        for name in filenames:
            with Image.open(pathlib.Path(image_dir) / name) as im:
                img = im.convert("RGB").resize((image_size, image_size))
            x = torch.tensor(list(img.getdata()), dtype=torch.float32).view(image_size, image_size, 3)
            x = ((x.permute(2, 0, 1) / 255.0 - mean) / std).unsqueeze(0).to(device)
            out[name] = label_names[int(model(x).argmax(dim=1))]
    return out


def main(args):
    import torch

    checkpoint = torch.load(args.ckpt, map_location=args.device)  # {"model": nn.Module, "label2idx": {...}}
    idx2label = {v: k for k, v in checkpoint["label2idx"].items()}
    label_names = [idx2label[k] for k in range(len(idx2label))]
    filenames = sorted(p.name for p in args.input_image_dir.glob("*.jpg"))
    filename2label = predict(checkpoint["model"].to(args.device), args.input_image_dir, filenames, label_names,
                             device=args.device)
    write_predictions(args.input_csv, filename2label, args.output_csv)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--input_csv", type=pathlib.Path, required=True)
    parser.add_argument("--input_image_dir", type=pathlib.Path, required=True)
    parser.add_argument("--output_csv", type=pathlib.Path, required=True)
    parser.add_argument("--ckpt", type=pathlib.Path, default=pathlib.Path("P2_ckpt/classifier.pth"))
    parser.add_argument("--device", default="cpu")
    main(parser.parse_args())
