"""Given: train a model of either task and keep its best checkpoint.

    python train.py --task cls
    python train.py --task seg

Checkpoints go to ./checkpoints/<task>/ (best_model.pt and model_epoch_<k>.pt), the loss and accuracy per
epoch to ./logs/<task>_<exp_name>/ when tensorboard is installed. The reported train loss of an epoch is the
SUM of the batch losses, as in the course's script.
"""
import argparse
import os

import torch

from data_loader import get_data_loader
from models import cls_model, seg_model
from utils import create_dir, save_checkpoint


def train(train_dataloader, model, opt, epoch, args, writer):
    model.train()
    step = epoch * len(train_dataloader)
    epoch_loss = 0
    criterion = torch.nn.CrossEntropyLoss()
    for i, (point_clouds, labels) in enumerate(train_dataloader):
        point_clouds = point_clouds.to(args.device)
        labels = labels.to(args.device).to(torch.long)
        predictions = model(point_clouds)
        if args.task == "seg":  # one prediction per point
            labels = labels.reshape([-1])
            predictions = predictions.reshape([-1, args.num_seg_class])
        loss = criterion(predictions, labels)
        epoch_loss += loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if writer is not None:
            writer.add_scalar("train_loss", loss.item(), step + i)
    return epoch_loss


def test(test_dataloader, model, epoch, args, writer):
    model.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for point_clouds, labels in test_dataloader:
            point_clouds = point_clouds.to(args.device)
            labels = labels.to(args.device).to(torch.long)
            pred_labels = model(point_clouds).argmax(dim=-1)
            correct += pred_labels.eq(labels).sum().item()
            total += labels.numel()
    accuracy = correct / total
    if writer is not None:
        writer.add_scalar("test_acc", accuracy, epoch)
    return accuracy


def main(args):
    create_dir(args.checkpoint_dir)
    try:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter("./logs/{}_{}".format(args.task, args.exp_name))
    except ImportError:
        writer = None

    model = cls_model() if args.task == "cls" else seg_model()
    model = model.to(args.device)
    if args.load_checkpoint:
        path = os.path.join(args.checkpoint_dir, "{}.pt".format(args.load_checkpoint))
        model.load_state_dict(torch.load(path, map_location=args.device))
        print("loaded checkpoint from {}".format(path))
    opt = torch.optim.Adam(model.parameters(), args.lr, betas=(0.9, 0.999))

    train_dataloader = get_data_loader(args=args, train=True)
    test_dataloader = get_data_loader(args=args, train=False)
    print("successfully loaded data")

    best_acc = -1
    for epoch in range(args.num_epochs):
        train_epoch_loss = train(train_dataloader, model, opt, epoch, args, writer)
        current_acc = test(test_dataloader, model, epoch, args, writer)
        print("epoch: {}   train loss: {:.4f}   test accuracy: {:.4f}".format(epoch, train_epoch_loss, current_acc))
        if epoch % args.checkpoint_every == 0:
            save_checkpoint(epoch=epoch, model=model, args=args, best=False)
        if current_acc >= best_acc:
            best_acc = current_acc
            save_checkpoint(epoch=epoch, model=model, args=args, best=True)
    print("best test accuracy: {:.4f}".format(best_acc))


def create_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", type=str, default="cls", help="cls or seg")
    parser.add_argument("--num_seg_class", type=int, default=6, help="number of segmentation classes")
    parser.add_argument("--num_epochs", type=int, default=250)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_workers", type=int, default=0, help="threads of the DataLoader")
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--exp_name", type=str, default="exp")
    parser.add_argument("--main_dir", type=str, default="./data/")
    parser.add_argument("--checkpoint_every", type=int, default=10)
    parser.add_argument("--load_checkpoint", type=str, default="")
    return parser


if __name__ == "__main__":
    args = create_parser().parse_args()
    args.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.checkpoint_dir = "./checkpoints/" + args.task
    main(args)
