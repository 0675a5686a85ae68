"""CMU 16-825 Assignment 4, Q2: score distillation sampling with Stable Diffusion.

Without `diffusers` installed (or without the model weights), the given `sds_offline.py` stands in for
it: sds_loss then runs on a fixed, untrained noise predictor (useful to test the code, not the images).
"""
import torch
import torch.nn.functional as F

try:
    from diffusers import DDIMScheduler, StableDiffusionPipeline
except ImportError:  # offline: the given stand-in with the same interface
    from sds_offline import DDIMScheduler, StableDiffusionPipeline


class SDS:
    """The SDS loss of a latent image under a text prompt."""

    def __init__(self, sd_version="2.1", device="cpu", t_range=[0.02, 0.98], output_dir="output"):
        if sd_version == "2.1":
            sd_model_key = "stabilityai/stable-diffusion-2-1-base"
        else:
            raise NotImplementedError(f"Stable diffusion version {sd_version} not supported")

        self.H = 512  # default height of Stable Diffusion
        self.W = 512  # default width of Stable Diffusion
        self.num_inference_steps = 50
        self.output_dir = output_dir
        self.device = device
        self.precision_t = torch.float32

        sd_pipe = StableDiffusionPipeline.from_pretrained(sd_model_key, torch_dtype=self.precision_t).to(device)
        self.vae = sd_pipe.vae
        self.tokenizer = sd_pipe.tokenizer
        self.text_encoder = sd_pipe.text_encoder
        self.unet = sd_pipe.unet
        self.scheduler = DDIMScheduler.from_pretrained(sd_model_key, subfolder="scheduler", torch_dtype=self.precision_t)
        del sd_pipe

        self.num_train_timesteps = self.scheduler.config.num_train_timesteps
        self.min_step = int(self.num_train_timesteps * t_range[0])
        self.max_step = int(self.num_train_timesteps * t_range[1])
        self.alphas = self.scheduler.alphas_cumprod.to(self.device)  # (T,) alpha-bar, for convenient access

    @torch.no_grad()
    def get_text_embeddings(self, prompt):
        """(B, 77, D) text embeddings of a list of prompts."""
        text_input = self.tokenizer(prompt, padding="max_length", max_length=self.tokenizer.model_max_length,
                                    return_tensors="pt")
        return self.text_encoder(text_input.input_ids.to(self.device))[0]

    def encode_imgs(self, img):
        """(B, 3, 512, 512) images in [0, 1] to (B, 4, 64, 64) latents."""
        assert img.shape[-2:] == (512, 512), "Image shape should be 512x512"
        img = 2 * img - 1  # [0, 1] => [-1, 1]
        posterior = self.vae.encode(img).latent_dist
        return posterior.sample() * self.vae.config.scaling_factor

    def decode_latents(self, latents):
        """(1, 4, 64, 64) latents to one (512, 512, 3) image with values in [0, 255]."""
        latents = 1 / self.vae.config.scaling_factor * latents
        imgs = self.vae.decode(latents.type(self.precision_t)).sample
        imgs = (imgs / 2 + 0.5).clamp(0, 1)  # [-1, 1] => [0, 1]
        imgs = imgs.detach().cpu().permute(0, 2, 3, 1).numpy()
        return (imgs * 255).round()[0]

    def sds_loss(self, latents, text_embeddings, text_embeddings_uncond=None, guidance_scale=100, grad_scale=1):
        """The SDS loss: a scalar whose gradient with respect to `latents` is
        grad_scale * w(t) * (predicted noise - noise), w(t) = 1 - alpha-bar_t.

        Args:
            latents:                (B, 4, h, w) latents being optimised (requires grad).
            text_embeddings:        (B, 77, D) embeddings of the prompt.
            text_embeddings_uncond: (B, 77, D) embeddings of the empty (negative) prompt, or None: then
                                    no classifier-free guidance.
            guidance_scale:         s in eps_u + s (eps_c - eps_u).
            grad_scale:             multiplies the gradient.

        Returns:
            loss: a scalar tensor.
        """
        # sample a timestep ~ U(0.02, 0.98) to avoid very high/low noise level
        t = torch.randint(self.min_step, self.max_step + 1, (latents.shape[0],), dtype=torch.long, device=self.device)

        # predict the noise residual with unet, NO grad!
        with torch.no_grad():
            # TODO Task 2.1: replace this raise with your code.
            raise NotImplementedError("Task 2.1: fill in the missing lines here")

            if text_embeddings_uncond is not None and guidance_scale != 1:
                # TODO Task 2.1: replace this raise with your code.
                raise NotImplementedError("Task 2.1: fill in the missing lines here")

        # Compute SDS loss
        w = 1 - self.alphas[t]
        # TODO Task 2.1: replace this raise with your code.
        raise NotImplementedError("Task 2.1: fill in the missing lines here")

        return loss
