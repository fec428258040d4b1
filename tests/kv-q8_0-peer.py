#!/usr/bin/env python3
# kv-q8_0-peer.py - a peer reference for the Q8_0 KV cache (not run by the
# suite): a numpy forward of stories260K (Hugging Face Llama arithmetic,
# float64) over each generate.json prompt and its first 24 greedy tokens,
# with the keys and values rounded to Q8_0 (32-blocks over a position's
# n_kv_heads * head_dim, d = amax / 127 kept as half) and without; prints
# the worst relative L2 between the two runs' logits. 2026-12-07: 0.0906,
# which test-cuda-forward's GPU run (0.0906 against the CPU's F32 cache)
# matched; hence that test compares against the CPU with the same
# rounding (llm_kv_cache_set_rounding) and not against a loose bound.
#   pip install numpy safetensors; python3 tests/kv-q8_0-peer.py [MODEL_DIR]
# SPDX-License-Identifier: LGPL-2.1-or-later
import sys
import json, numpy as np
from safetensors.numpy import load_file
d=(sys.argv[1] if len(sys.argv) > 1 else '../shared/models/stories260K').rstrip('/')+'/'
W=load_file(d+'model.safetensors'); cfg=json.load(open(d+'config.json'))
gen=json.load(open(d+'reference/generate.json'))
L=cfg['num_hidden_layers']; H=8; KH=4; hd=8; dim=64
def rms(x,w): return x/np.sqrt((x*x).mean()+1e-5)*w
def q8(x):
    x=x.reshape(-1,32); a=np.abs(x).max(1,keepdims=True); dd=a/127
    idd=np.where(dd!=0,1/np.where(dd!=0,dd,1),0)
    q=np.trunc(x*idd+np.copysign(0.5,x*idd))  # roundf: halves away from 0
    return (q*dd.astype(np.float16).astype(np.float32)).reshape(-1)
inv=1.0/(10000**(np.arange(0,hd,2)/hd))
def rope(x,pos):
    x=x.reshape(-1,hd); a=pos*inv; c=np.cos(a); s=np.sin(a)
    x1=x[:,:hd//2]; x2=x[:,hd//2:]
    return np.concatenate([x1*c-x2*s, x1*s+x2*c],1).reshape(-1)
def run(tokens, quant):
    K=[[] for _ in range(L)]; V=[[] for _ in range(L)]; out=[]
    emb=W['model.embed_tokens.weight']
    for pos,t in enumerate(tokens):
        x=emb[t].astype(np.float64)
        for l in range(L):
            p=f'model.layers.{l}.'
            h=rms(x,W[p+'input_layernorm.weight'])
            q=W[p+'self_attn.q_proj.weight']@h; k=W[p+'self_attn.k_proj.weight']@h; v=W[p+'self_attn.v_proj.weight']@h
            q=rope(q,pos); k=rope(k,pos)
            if quant: k=q8(k); v=q8(v)
            K[l].append(k); V[l].append(v)
            Ks=np.array(K[l]).reshape(len(K[l]),KH,hd); Vs=np.array(V[l]).reshape(len(V[l]),KH,hd)
            o=np.zeros(H*hd)
            for hh in range(H):
                kv=hh//(H//KH); sc=Ks[:,kv,:]@q[hh*hd:(hh+1)*hd]/np.sqrt(hd)
                pr=np.exp(sc-sc.max()); pr/=pr.sum(); o[hh*hd:(hh+1)*hd]=pr@Vs[:,kv,:]
            x=x+W[p+'self_attn.o_proj.weight']@o
            h=rms(x,W[p+'post_attention_layernorm.weight'])
            g=W[p+'mlp.gate_proj.weight']@h; u=W[p+'mlp.up_proj.weight']@h
            x=x+W[p+'mlp.down_proj.weight']@(g/(1+np.exp(-g))*u)
        out.append(emb@rms(x,W['model.norm.weight']))
    return out
cases=gen['cases'] if 'cases' in gen else gen
worst=0
for c in cases[:5]:
    ids=c.get('prompt_ids') or c.get('input_ids') or c.get('ids')
    full=list(ids)+list(c['greedy_ids'])[:24]
    a=run(full,False); b=run(full,True)
    for i in range(len(ids)-1,len(full)):
        e=np.linalg.norm(b[i]-a[i])/np.linalg.norm(a[i]); worst=max(worst,e)
print('worst rel L2 of logits, Q8_0 KV vs exact:', worst)
